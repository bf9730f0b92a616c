"""What the monitoring deploy computes: Prometheus' configuration, SNMPv3 and SSH credentials."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from unops import PROJECT_ROOT
from unops.errors import ExporterError
from unops.exporter import deployment


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
