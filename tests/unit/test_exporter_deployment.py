"""What the monitoring deploy computes: Prometheus' configuration, SNMPv3 and SSH credentials."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from unops import PROJECT_ROOT
from unops.directory.slapd import check_ssha, office_mailbox_entry
from unops.errors import DirectoryError, ExporterError
from unops.estate import load_estate
from unops.exporter import deployment
from unops.exporter.config import config_from_estate


def test_prometheus_config_scrapes_the_exporter_over_https_and_loads_the_rules(
    tmp_path: Path,
) -> None:
    """The generated prometheus.yml passes `promtool check config` with the repository's rules."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make host-packages)")
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    text = deployment.prometheus_config(
        fleet="lab",
        address="198.18.0.30",
        scrape_interval="15s",
        scrape_timeout="10s",
        exporter_tls=True,
        ca_file=str(ca),
        server_name="mon1.ict.example",
    )
    config = json.loads(text)
    job = config["scrape_configs"][0]
    assert job["job_name"] == "unops-exporter" and job["scheme"] == "https"
    assert job["static_configs"] == [{"targets": ["198.18.0.30:9470"]}]
    assert job["tls_config"] == {"server_name": "mon1.ict.example", "ca_file": str(ca)}
    # promtool resolves rule_files relative to the file: point them at monitors/rules.
    config["rule_files"] = [str(PROJECT_ROOT / "monitors" / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_authorized_key_allows_only_the_forced_command_from_the_exporter() -> None:
    """The exporter's key runs only monitor-read, only from its addresses, with no forwarding."""
    line = deployment.authorized_key_line("ssh-ed25519 AAAAkey", ["198.18.0.30", "198.18.0.1"])
    options = line.split(" ", 1)[0]
    assert options.startswith("restrict,")
    assert 'from="198.18.0.30,198.18.0.1"' in options
    assert 'command="/usr/local/lib/unops/monitor-read"' in options
    assert line.endswith("ssh-ed25519 AAAAkey unops-exporter")


def test_snmp_create_user_names_sha256_and_aes_and_refuses_unsafe_passphrases() -> None:
    """createUser names SHA-256 and AES; a short passphrase or one snmpd would split is refused."""
    line = deployment.snmp_create_user_line("unops-exporter", "a" * 32, "b" * 32)
    assert line == f"createUser unops-exporter SHA-256 {'a' * 32} AES {'b' * 32}"
    for bad in ("short", "has space in it", "quote'inside-it"):
        with pytest.raises(ExporterError, match="8 or more"):
            deployment.snmp_create_user_line("unops-exporter", bad, "b" * 32)


def test_snmp_marker_changes_with_the_credentials_and_does_not_hold_them() -> None:
    """The marker tells a changed passphrase apart, and contains neither passphrase."""
    marker = deployment.snmp_user_marker("u", "authpassphrase", "privpassphrase")
    assert marker != deployment.snmp_user_marker("u", "authpassphrase", "otherpassphrase")
    assert "authpassphrase" not in marker and "privpassphrase" not in marker


def test_exporter_requirements_are_pinned_to_the_control_machines_versions() -> None:
    """Each dependency installed on the monitoring host is pinned to an exact version."""
    pins = deployment.requirements()
    assert [pin.split("==")[0] for pin in pins] == list(deployment.EXPORTER_REQUIREMENTS)
    assert all(len(pin.split("==")) == 2 and pin.split("==")[1] for pin in pins)


def test_probe_mailboxes_are_one_per_mail_server_in_the_office_zone_without_a_mission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each mail server gets a probe mailbox homed on it, active, in ict.example, no mission;
    its password is generated once, kept in the secrets and hashed the same way every run."""
    monkeypatch.setattr("unops.secrets.SECRETS_DIR", tmp_path / "secrets")
    config = config_from_estate(load_estate(), "lab")
    entries = deployment.probe_entries(config)
    assert [e.name for e in entries] == [f"mailbox-probe-mail{n}@ict.example" for n in (1, 2, 3, 4)]
    first = entries[0].add
    assert "dn: mail=probe-mail1@ict.example,ou=mailboxes,dc=ict,dc=example\n" in first
    assert "unopsHomeServer: mail1\n" in first and "unopsAccountState: active\n" in first
    assert "unopsMission" not in first
    secret = tmp_path / "secrets" / "lab" / "mail" / "probe" / "mail1"
    assert secret.stat().st_mode & 0o777 == 0o600
    [hashed] = [line.split(": ", 1)[1] for line in first.splitlines() if "userPassword" in line]
    assert check_ssha(secret.read_text().strip(), hashed)
    assert secret.read_text().strip() not in first
    # The same secrets give the same LDIF: a second deploy has nothing to apply.
    assert deployment.probe_entries(config) == entries
    assert entries[0].modify is not None and "replace: userPassword\n" in entries[0].modify


def test_an_office_mailbox_value_that_ldif_cannot_hold_is_refused() -> None:
    """A description with a newline would inject LDIF lines: refused, naming the value."""
    with pytest.raises(DirectoryError, match=r"cn 'probe\\nobjectClass: x' of a@ict\.example"):
        office_mailbox_entry(
            "dc=ict,dc=example", "a@ict.example", "mail1", "pw", "probe\nobjectClass: x", 64
        )


MONITOR_READ = PROJECT_ROOT / "deploys/templates/unops-exporter/usr/local/lib/unops/monitor-read"


def _monitor_read(tmp_path: Path, question: str, listing: str) -> subprocess.CompletedProcess[str]:
    """Run the forced command with a stand-in `postqueue -j` that prints `listing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "postqueue"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{listing}EOF\n")
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SSH_ORIGINAL_COMMAND": question}
    return subprocess.run(["sh", str(MONITOR_READ)], env=env, capture_output=True, text=True)


def test_monitor_read_counts_each_queue_from_postqueue_json(tmp_path: Path) -> None:
    """Two deferred and one active message give those counts, and 0 for the empty queues."""
    listing = "".join(
        f'{{"queue_name": "{queue}", "queue_id": "{n}", "recipients": []}}\n'
        for n, queue in enumerate(["deferred", "active", "deferred"])
    )
    done = _monitor_read(tmp_path, "queue", listing)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["active 1", "deferred 2", "hold 0", "incoming 0"]


def test_monitor_read_refuses_any_other_question(tmp_path: Path) -> None:
    """Whatever else the client asks, the answer is a refusal with status 2 and nothing run."""
    done = _monitor_read(tmp_path, "cat /etc/shadow", "")
    assert done.returncode == 2 and done.stdout == ""
    assert "answers 'records' or 'queue' only" in done.stderr
