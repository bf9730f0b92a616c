"""What each backed-up host sends where, from the estate; keys, pins and status judgements."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from unops import chain, secrets
from unops.backup import client, plan, records
from unops.errors import BackupError
from unops.estate import load_estate


@pytest.fixture()
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(secrets, "SECRETS_DIR", tmp_path / "secrets")
    return tmp_path / "secrets"


def test_backed_up_hosts_are_mail_directory_and_cms_of_the_fleet() -> None:
    """The lab backs up its mail, directory and CMS hosts; production also those not in the lab."""
    estate = load_estate()
    assert plan.clients(estate, "lab") == ["dir1", "mail1", "mail2", "mail3", "mail4", "cms1"]
    assert plan.clients(estate, "production")[-2:] == ["cms1", "cms2"]
    assert plan.backup_host(estate) == "backup1"


def test_mail_server_backs_up_and_drills_its_maildirs() -> None:
    """A mail server backs up /etc and the Maildirs, and its drill compares messages."""
    mail1 = plan.plan_for(load_estate(), "mail1", "lab")
    assert mail1.paths == ["/etc", "/var/vmail"]
    assert mail1.pre == []
    assert mail1.drill == [{"kind": "maildir", "path": "/var/vmail"}]
    assert (mail1.sftp_user, mail1.chroot) == ("restic-mail1", "/srv/restic/mail1")
    assert (mail1.backup_host, mail1.backup_address) == ("backup1", "198.18.0.20")
    assert mail1.repository == "sftp:unops-backup:/repo"


def test_directory_host_takes_a_slapcat_dump_before_the_backup() -> None:
    """The directory is dumped with slapcat (data and config) and its drill compares entries."""
    dir1 = plan.plan_for(load_estate(), "dir1", "lab")
    assert plan.SLAPD_DUMP_DIR in dir1.paths
    assert [step["command"][:3] for step in dir1.pre] == [
        ["slapcat", "-n", "1"],
        ["slapcat", "-n", "0"],
    ]
    assert dir1.drill[0]["kind"] == "ldif"
    assert dir1.drill[0]["path"] == f"{plan.SLAPD_DUMP_DIR}/data.ldif"


def test_cms_host_dumps_its_databases_and_checks_their_checksums() -> None:
    """A CMS host backs up its sites and a database dump; its drill compares dump checksums."""
    cms1 = plan.plan_for(load_estate(), "cms1", "lab")
    assert cms1.paths == ["/etc", plan.CMS_SITES_DIR, plan.DATABASE_DUMP_DIR]
    assert "mysqldump --all-databases --single-transaction" in cms1.pre[0]["command"][2]
    assert cms1.drill == [{"kind": "files", "path": plan.DATABASE_DUMP_DIR}]


def test_retention_and_check_share_come_from_the_estate() -> None:
    """Snapshots kept and the check's share are the estate's backup.toml values."""
    estate = load_estate()
    mail2 = plan.plan_for(estate, "mail2", "lab")
    assert mail2.keep == {
        "daily": estate.backup.keep_daily,
        "weekly": estate.backup.keep_weekly,
        "monthly": estate.backup.keep_monthly,
    }
    assert mail2.check_parts == int(estate.backup.check_subset.split("/")[1])


def test_host_that_is_not_backed_up_is_refused_with_the_known_ones() -> None:
    """Asking for the plan of the backup host itself names the hosts that are backed up."""
    with pytest.raises(BackupError, match="host 'backup1' is not backed up in the lab fleet"):
        plan.plan_for(load_estate(), "backup1", "lab")
    with pytest.raises(BackupError, match="dir1, mail1, mail2, mail3, mail4, cms1"):
        plan.plan_for(load_estate(), "cms2", "lab")


def test_runner_config_holds_no_secret(secrets_dir: Path) -> None:
    """The runner's settings name the password file; the password itself is not in them."""
    password = plan.restic_password("lab", "mail1")
    config = plan.plan_for(load_estate(), "mail1", "lab").runner_config()
    assert password not in config
    data = json.loads(config)
    assert data["password_file"] == plan.PASSWORD_FILE
    assert data["restic_options"] == [
        "-o",
        f"sftp.command=ssh -F {plan.SSH_CONFIG_FILE} unops-backup -s sftp",
    ]


def test_client_key_is_generated_once_and_kept_private(secrets_dir: Path) -> None:
    """A client's SSH key is made on first use (0600), the same afterwards, and differs per host."""
    first = plan.client_key("lab", "mail1")
    assert plan.client_key("lab", "mail1") == first
    assert first[0].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert first[1].startswith("ssh-ed25519 ")
    assert plan.client_key("lab", "mail2")[1] != first[1]
    key_file = secrets_dir / "lab" / "restic" / "sftp-key" / "mail1"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_known_hosts_pins_only_the_backup_host(tmp_path: Path) -> None:
    """Only the backup host's pinned keys go to the clients; a missing pin is an error."""
    known = tmp_path / "known_hosts"
    known.write_text(
        "198.18.0.11,mail1,mail1.ict.example ssh-ed25519 AAAAmail1\n"
        "# a comment\n"
        "198.18.0.20,backup1,backup1.ict.example ssh-ed25519 AAAAbackup1\n"
    )
    lines = plan.known_hosts_lines(known, ["198.18.0.20", "backup1"])
    assert lines == "198.18.0.20,backup1,backup1.ict.example ssh-ed25519 AAAAbackup1\n"
    with pytest.raises(BackupError, match="no pinned host key for backup9"):
        plan.known_hosts_lines(known, ["backup9"])


def _chain(payloads: list[dict[str, object]]) -> records.HostRecords:
    lines = []
    prev, seq = chain.GENESIS, 1
    for payload in payloads:
        line = chain.canonical({**payload, "seq": seq, "prev": prev})
        lines.append(line)
        prev, seq = chain.digest(line), seq + 1
    return records.parse_lines("mail1", lines)


def _payload(time: str, kind: str = "backup", result: str = "ok") -> dict[str, object]:
    return {
        "time": time,
        "host": "mail1",
        "kind": kind,
        "result": result,
        "exit_code": 0 if result == "ok" else 3,
        "snapshot": "abcd1234" if result == "ok" else None,
        "bytes": 10,
        "files": 1,
        "duration_seconds": 1.0,
        "detail": "" if result == "ok" else "error: open /var/vmail/x: permission denied",
    }


def test_status_is_ok_with_a_recent_good_backup() -> None:
    """A good backup six hours ago and a passing check: no finding."""
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    status = client.status_of(
        _chain([_payload("2026-12-03T06:00:00Z"), _payload("2026-12-03T10:00:00Z", "check")]), now
    )
    assert status.ok, status.findings
    assert status.last_good_backup is not None and status.last_check is not None


def test_status_flags_an_overdue_and_a_failed_backup() -> None:
    """The last good backup is two days old and the latest failed: both are said, with who acts."""
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    status = client.status_of(
        _chain(
            [_payload("2026-12-01T06:00:00Z"), _payload("2026-12-03T06:00:00Z", result="failed")]
        ),
        now,
    )
    assert status.findings == [
        "last successful backup 2026-12-01 06:00Z is older than 26 h (ops: check "
        "unops-backup.timer on mail1)",
        "last backup failed (exit 3): error: open /var/vmail/x: permission denied (ops)",
    ]


def test_check_subset_must_be_a_share() -> None:
    """A subset that is not n/t with 1 <= n <= t is refused before any connection."""
    with pytest.raises(BackupError, match="subset '8/7' must be n/t"):
        client.check("mail1", "8/7")
