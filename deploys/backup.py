"""Daily encrypted backups (restic over SFTP) of every mail, directory and CMS host to backup1.

Run it with `unops deploy backup` or `pyinfra -y inventory/lab.py deploys/backup.py`. What each
host backs up is computed in `unops.backup.plan`; this file only moves it onto the hosts. The
backup host is configured first (operations run in file order on every host), so a client's
repository can be created in the same run.

On the backup host each client has its own account, `restic-<host>`, that sshd confines to
SFTP inside a root-owned chroot in which only `/repo` (the repository, 0700) belongs to it. On
each client a stdlib runner (/usr/local/lib/unops/backup-run) runs restic and appends one
chained record per run; see docs/backup-records.md.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from unops import PROJECT_ROOT
from unops.backup import plan
from unops.estate import load_estate
from unops.inventory import PRODUCTION_KNOWN_HOSTS
from unops.lab import paths

TEMPLATES = PROJECT_ROOT / "deploys" / "templates" / "backup"

# Deploy defaults.
# restic_packages: restic itself and the ssh client its SFTP backend runs.
restic_packages = ["restic", "openssh-client"]
# backup_check_at: local time (HH:MM) of the daily verification, after the backups are done.
backup_check_at = "05:30"
# backup_spread: random delay of each host's timers, so the hosts do not all write at once.
backup_spread = "30min"
# backup_timeout: longest a backup or check may run before systemd stops it.
backup_timeout = "6h"


class ResticRepository(FactBase):
    """Whether the host's repository answers ("present") or must be created ("absent")."""

    def command(self) -> str:
        return f"test -x {plan.RUNNER} && {plan.RUNNER} probe 2>/dev/null || echo absent"

    def process(self, output: list[str]) -> str:
        return output[-1].strip() if output else "absent"


fleet = str(host.data.fleet)
estate = load_estate()
roles = set(host.data.roles)
timezone = str(host.data.get("timezone", "UTC"))
known_hosts_file = paths.KNOWN_HOSTS if fleet == "lab" else PRODUCTION_KNOWN_HOSTS


def template(dest: str, src: str, mode: str = "644", **data: object):
    """Render templates/backup/<src>.j2 to `dest` on the host."""
    return files.template(
        name=f"Configure {dest}",
        src=str(TEMPLATES / f"{src.lstrip('/')}.j2"),
        dest=dest,
        user="root",
        group="root",
        mode=mode,
        **data,
    )


def install(dest: str, src: str | StringIO, mode: str):
    """Put `src` (a path on this machine, or the text itself) at `dest` on the host, root's."""
    return files.put(
        name=f"Install {dest}", src=src, dest=dest, user="root", group="root", mode=mode
    )


def root_directory(path: str, mode: str):
    """Create the directory `path` on the host, root's, with `mode`."""
    return files.directory(name=f"Create {path}", path=path, user="root", group="root", mode=mode)


# --- The backup host: one confined SFTP account per client -----------------------------------
if "backup" in roles:
    root_directory(plan.CHROOTS_DIR, "755")
    root_directory(plan.AUTHORIZED_KEYS_DIR, "755")
    sshd_ops = []
    for client in plan.clients(estate, fleet):
        client_plan = plan.plan_for(estate, client, fleet)
        user = client_plan.sftp_user
        server.group(name=f"Create the group {user}", group=user, system=True)
        server.user(
            name=f"Create the SFTP account {user}",
            user=user,
            group=user,
            home=client_plan.chroot,
            shell="/usr/sbin/nologin",
            system=True,
            ensure_home=False,
        )
        # sshd refuses a chroot that is not root's all the way up, and not writable by others.
        root_directory(client_plan.chroot, "755")
        files.directory(
            name=f"Create {client_plan.chroot}/repo",
            path=f"{client_plan.chroot}/repo",
            user=user,
            group=user,
            mode="700",
        )
        _, public_key = plan.client_key(fleet, client)
        sshd_ops.append(
            install(
                f"{plan.AUTHORIZED_KEYS_DIR}/{user}",
                StringIO(f"restrict {public_key} unops backup of {client}\n"),
                "644",
            )
        )
        sshd_ops.append(
            template(
                f"/etc/ssh/sshd_config.d/unops-backup-{client}.conf",
                "etc/ssh/sshd_config.d/unops-backup-client.conf",
                client=client,
                sftp_user=user,
                chroot=client_plan.chroot,
                authorized_keys=f"{plan.AUTHORIZED_KEYS_DIR}/%u",
            )
        )
    sshd_changed = any_changed(*sshd_ops)
    server.shell(name="Check the sshd configuration", commands=["sshd -t"], _if=sshd_changed)
    systemd.service(
        name="Reload ssh.service", service="ssh.service", reloaded=True, _if=sshd_changed
    )

# NB: pyinfra orders each host's operations on its own; one operation that every host runs, from
# this one place, is the barrier that puts the backup host's accounts before any client's
# first connection (the repository is created below).
# (Existence only: the directory deploy owns its mode.)
backed_up = bool(roles & {role.value for role in plan.BACKED_UP_ROLES})
if backed_up or "backup" in roles:
    files.directory(name="Ensure /var/lib/unops exists", path="/var/lib/unops")

# --- A backed-up host: restic, the runner, its secrets and its timers --------------------------
if backed_up:
    client_plan = plan.plan_for(estate, host.name, fleet)
    private_key, _ = plan.client_key(fleet, host.name)
    pinned = plan.known_hosts_lines(
        known_hosts_file,
        [client_plan.backup_address, client_plan.backup_host, estate.fqdn(client_plan.backup_host)],
    )

    apt.update(name="Update the apt cache", cache_time=24 * 3600)
    apt.packages(name="Install restic", packages=restic_packages, no_recommends=True)

    for folder, mode in (
        (plan.CONFIG_DIR, "700"),
        (plan.SCRATCH_DIR, "700"),
        ("/var/cache/restic", "700"),
    ):
        root_directory(folder, mode)
    # The records may be read by the monitoring reader's group, and written by root only; the
    # runner gives a new records file the folder's group.
    server.group(
        name=f"Create the group {plan.RECORDS_GROUP}", group=plan.RECORDS_GROUP, system=True
    )
    records_dir = str(Path(plan.RECORDS_FILE).parent)
    files.directory(
        name=f"Create {records_dir}",
        path=records_dir,
        user="root",
        group=plan.RECORDS_GROUP,
        mode="750",
    )
    if host.get_fact(File, path=plan.RECORDS_FILE):
        files.file(
            name=f"Let {plan.RECORDS_GROUP} read {plan.RECORDS_FILE}",
            path=plan.RECORDS_FILE,
            user="root",
            group=plan.RECORDS_GROUP,
            mode="640",
        )
    # Consistent copies (dumps) are root's alone: they hold every account and every row.
    dump_dirs = sorted({str(step["dir"]) for step in client_plan.pre})
    for folder in dump_dirs:
        root_directory(folder, "700")
    # What is backed up must exist, or restic fails the whole run; owners stay the services'.
    for folder in client_plan.paths:
        if folder not in dump_dirs:
            files.directory(name=f"Ensure {folder} exists", path=folder)

    install(plan.RUNNER, str(TEMPLATES / plan.RUNNER.lstrip("/")), "755")
    install(plan.CONFIG_FILE, StringIO(client_plan.runner_config()), "600")
    install(plan.PASSWORD_FILE, StringIO(plan.restic_password(fleet, host.name) + "\n"), "600")
    install(plan.SSH_KEY_FILE, StringIO(private_key), "600")
    install(plan.KNOWN_HOSTS_FILE, StringIO(pinned), "644")
    template(
        plan.SSH_CONFIG_FILE,
        "etc/unops/backup/ssh_config",
        backup_host=client_plan.backup_host,
        alias=plan.SSH_ALIAS,
        address=client_plan.backup_address,
        sftp_user=client_plan.sftp_user,
        key_file=plan.SSH_KEY_FILE,
        known_hosts=plan.KNOWN_HOSTS_FILE,
    )

    if host.get_fact(ResticRepository) != "present":
        server.shell(
            name=f"Create the restic repository of {host.name} on {client_plan.backup_host}",
            commands=[f"{plan.RUNNER} init"],
        )

    unit_data = {
        "backup_host": client_plan.backup_host,
        "runner": plan.RUNNER,
        "timeout": backup_timeout,
        "daily_at": estate.backup.daily_at,
        "check_at": backup_check_at,
        "timezone": timezone,
        "spread": backup_spread,
    }
    unit_ops = [
        template(f"/etc/systemd/system/{unit}", f"etc/systemd/system/{unit}", **unit_data)
        for unit in (
            "unops-backup.service",
            "unops-backup.timer",
            "unops-backup-check.service",
            "unops-backup-check.timer",
        )
    ]
    systemd.daemon_reload(name="Reload systemd units", _if=any_changed(*unit_ops))
    for timer in ("unops-backup.timer", "unops-backup-check.timer"):
        systemd.service(name=f"Enable and start {timer}", service=timer, running=True, enabled=True)
