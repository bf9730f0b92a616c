"""The backup deploy on the lab: idempotent, and every client confined to its own repository."""

from __future__ import annotations

import pytest
from backup_support import deploy_backup

from unops.backup import client, plan
from unops.deploying import DeployResult
from unops.remote import CommandResult, run

pytestmark = pytest.mark.lab

# Two clients are enough to prove they cannot reach each other; the backup host serves them.
HOSTS = ["backup1", "mail1", "mail2"]
SSH = f"ssh -F {plan.SSH_CONFIG_FILE} -o ConnectTimeout=10"


@pytest.fixture(scope="module")
def deployed(lab: object) -> tuple[DeployResult, DeployResult]:
    """The deploy run twice in a row on the backup host and two clients."""
    return deploy_backup(HOSTS), deploy_backup(HOSTS)


def _sftp(host: str, batch: str, user: str | None = None) -> CommandResult:
    """Run an sftp batch on `host` with its own backup key and pinned backup host key."""
    as_user = f" -o User={user}" if user else ""
    command = (
        f"printf '%s\\n' {batch} | sftp -F {plan.SSH_CONFIG_FILE}{as_user} -b - {plan.SSH_ALIAS}"
    )
    return run(host, command)


def test_second_deploy_changes_nothing(deployed: tuple[DeployResult, DeployResult]) -> None:
    """The second run of the backup deploy reports no change on any host."""
    _, second = deployed
    changed = {
        name: [op.name for op in host.operations if op.changed]
        for name, host in second.hosts.items()
        if host.changed
    }
    assert set(second.hosts) == set(HOSTS)
    assert second.changed == 0, changed


def test_client_sees_only_its_own_repository(deployed: object) -> None:
    """Over SFTP, mail1 sees one folder, /repo; climbing out of its chroot leads nowhere."""
    done = _sftp("mail1", "'ls -1a /' 'cd /..' 'ls -1a'")
    assert done.ok, done.stderr
    listed = [line for line in done.stdout.splitlines() if not line.startswith("sftp>")]
    assert listed == ["/.", "/..", "/repo", ".", "..", "repo"], done.stdout


def test_client_cannot_reach_another_clients_repository(deployed: object) -> None:
    """mail1 finds no path to mail2's repository, and cannot write beside its own."""
    done = _sftp("mail1", "'ls /srv/restic/mail2/repo'")
    assert not done.ok
    done = _sftp("mail1", "'ls ../mail2/repo'")
    assert not done.ok
    assert "not found" in done.stderr, done.stderr
    done = _sftp("mail1", "'mkdir /intruder'")
    assert not done.ok, "mail1 could create a folder outside its repository"


def test_client_key_is_refused_for_another_clients_account(deployed: object) -> None:
    """mail1's key does not open mail2's account on the backup host."""
    done = _sftp("mail1", "'ls /'", user="restic-mail2")
    assert not done.ok
    assert "Permission denied" in done.stderr, done.stderr


def test_client_account_runs_no_shell(deployed: object) -> None:
    """mail1's account runs only SFTP: a command sent to it is never executed."""
    done = run("mail1", f"{SSH} -n {plan.SSH_ALIAS} id")
    assert "uid=" not in done.stdout, done.stdout


def test_repositories_belong_to_their_clients_only(deployed: object) -> None:
    """On the backup host each repository is its client's alone (0700), each chroot is root's."""
    done = run(
        "backup1",
        "stat -c '%n %U %a' /srv/restic/mail1 /srv/restic/mail1/repo /srv/restic/mail2/repo",
        check=True,
    )
    assert done.stdout.split("\n")[:3] == [
        "/srv/restic/mail1 root 755",
        "/srv/restic/mail1/repo restic-mail1 700",
        "/srv/restic/mail2/repo restic-mail2 700",
    ]


def test_each_client_backs_up_over_its_own_account(deployed: object) -> None:
    """mail1 and mail2 each complete a backup into their own repository, recorded on each."""
    for host in ("mail1", "mail2"):
        done = run(host, [plan.RUNNER, "backup"])
        assert done.ok, done.stdout + done.stderr
        assert '"result":"ok"' in done.stdout
    snapshots = run(
        "backup1",
        "ls /srv/restic/mail1/repo/snapshots /srv/restic/mail2/repo/snapshots",
        check=True,
    )
    assert snapshots.stdout.count("\n") >= 4


def test_systemd_units_run_the_daily_backup_and_the_check(deployed: object) -> None:
    """Starting the timers' services runs backup, forget and check, each leaving its record."""
    run("mail1", ["systemctl", "start", "unops-backup.service"], check=True, timeout=900)
    run("mail1", ["systemctl", "start", "unops-backup-check.service"], check=True, timeout=900)
    chain = client.fetch_records("mail1")
    assert chain.intact, chain.problems
    last = chain.records[-3:]
    assert [(r.kind, r.result) for r in last] == [
        ("backup", "ok"),
        ("forget", "ok"),
        ("check", "ok"),
    ]
    share, _, parts = last[2].detail.partition("/")
    assert parts == "7" and 1 <= int(share) <= 7
    timers = run(
        "mail1", ["systemctl", "is-enabled", "unops-backup.timer", "unops-backup-check.timer"]
    )
    assert timers.stdout.split() == ["enabled", "enabled"]
