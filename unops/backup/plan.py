"""What each backed-up host sends to the backup host, computed from the estate for one fleet.

The deploy (deploys/backup.py) only moves this plan onto the hosts. Each client gets its own
SFTP-only account on the backup host (`restic-<host>`), confined by sshd's ChrootDirectory to
`<chroot>/`, in which its repository is `/repo`; its own SSH key and restic password are
generated on the control machine and kept with the other secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from unops.errors import BackupError
from unops.estate import Estate
from unops.estate.models import Role
from unops.secrets import get_or_create, password

RUNNER = "/usr/local/lib/unops/backup-run"
CONFIG_DIR = "/etc/unops/backup"
CONFIG_FILE = f"{CONFIG_DIR}/config.json"
PASSWORD_FILE = f"{CONFIG_DIR}/restic.pass"
SSH_KEY_FILE = f"{CONFIG_DIR}/id_ed25519"
SSH_CONFIG_FILE = f"{CONFIG_DIR}/ssh_config"
KNOWN_HOSTS_FILE = f"{CONFIG_DIR}/known_hosts"
RECORDS_FILE = "/var/lib/unops/backup/records.jsonl"
# The group that may read the records (and nothing else of the backup): the monitoring reader,
# the account the exporter's restricted SSH key logs in as (deploys/monitoring.py).
RECORDS_GROUP = "unops-monitor"
# Where drills restore to (root only, 0700): never a shared temporary folder.
SCRATCH_DIR = "/var/lib/unops/backup/scratch"
# Where consistent copies (directory and database dumps) are written before each backup.
DUMPS_DIR = "/var/backups/unops"
# The alias the clients' ssh_config gives the backup host; restic's sftp.command uses it.
SSH_ALIAS = "unops-backup"
# On the backup host: one root-owned chroot per client, the repository inside it.
CHROOTS_DIR = "/srv/restic"
AUTHORIZED_KEYS_DIR = "/etc/unops/backup/authorized_keys"

# Roles whose hosts are backed up, and what each adds to the backup.
BACKED_UP_ROLES = (Role.MAIL, Role.DIRECTORY, Role.CMS)
MAIL_DIR = "/var/vmail"  # the Maildirs of the mail deploy (unops.mail.plan.VMAIL_DIR)
SLAPD_DUMP_DIR = f"{DUMPS_DIR}/slapd"
DATABASE_DUMP_DIR = f"{DUMPS_DIR}/databases"
CMS_SITES_DIR = "/var/www"
# A database dump only where a database server is installed: a CMS host without one still backs up.
_DUMP_DATABASES = (
    "command -v mysqldump >/dev/null || exit 0; "
    f"exec mysqldump --all-databases --single-transaction --routines --events "
    f"--result-file={DATABASE_DUMP_DIR}/all-databases.sql"
)


@dataclass(frozen=True)
class ClientPlan:
    """One backed-up host: what it backs up, where to, and how it checks a restore."""

    name: str
    fleet: str
    sftp_user: str
    chroot: str
    backup_host: str
    backup_address: str
    paths: list[str]
    pre: list[dict[str, Any]] = field(default_factory=list)
    drill: list[dict[str, Any]] = field(default_factory=list)
    keep: dict[str, int] = field(default_factory=dict)
    check_parts: int = 7

    @property
    def repository(self) -> str:
        return f"sftp:{SSH_ALIAS}:/repo"

    def runner_config(self) -> str:
        """The JSON settings the host's runner reads (no secret in it: the password is a file)."""
        config = {
            "host": self.name,
            "records": RECORDS_FILE,
            "repository": self.repository,
            "password_file": PASSWORD_FILE,
            "cache_dir": "/var/cache/restic",
            "restic_options": ["-o", f"sftp.command=ssh -F {SSH_CONFIG_FILE} {SSH_ALIAS} -s sftp"],
            "paths": self.paths,
            "pre": self.pre,
            "drill": self.drill,
            "keep": self.keep,
            "check_parts": self.check_parts,
            "scratch": SCRATCH_DIR,
        }
        return json.dumps(config, indent=2, sort_keys=True) + "\n"


def _fleet_address(estate: Estate, name: str, fleet: str) -> str | None:
    host = estate.host(name)
    address = host.lab_address if fleet == "lab" else host.address
    return None if address is None else str(address)


def backup_host(estate: Estate) -> str:
    hosts = estate.hosts_with_role(Role.BACKUP)
    if len(hosts) != 1:
        names = ", ".join(h.name for h in hosts) or "none"
        raise BackupError(
            f"the estate must have exactly one host with role 'backup' (inventory/estate/"
            f"hosts.toml); found: {names}"
        )
    return hosts[0].name


def clients(estate: Estate, fleet: str) -> list[str]:
    """The backed-up hosts of `fleet`, in estate order: every mail, directory and CMS host."""
    names = []
    for host in estate.hosts:
        backed_up = any(role in host.roles for role in BACKED_UP_ROLES)
        if backed_up and _fleet_address(estate, host.name, fleet) is not None:
            names.append(host.name)
    return names


def plan_for(estate: Estate, name: str, fleet: str) -> ClientPlan:
    """The backup plan of host `name`; BackupError if it is not a backed-up host of `fleet`."""
    known = clients(estate, fleet)
    if name not in known:
        raise BackupError(
            f"host {name!r} is not backed up in the {fleet} fleet; backed-up hosts (roles mail, "
            f"directory, cms): {', '.join(known)}"
        )
    server = backup_host(estate)
    server_address = _fleet_address(estate, server, fleet)
    if server_address is None:
        raise BackupError(f"backup host {server!r} has no address in the {fleet} fleet")
    roles = estate.host(name).roles
    paths = ["/etc"]
    pre: list[dict[str, Any]] = []
    drill: list[dict[str, Any]] = []
    if Role.MAIL in roles:
        paths.append(MAIL_DIR)
        drill.append({"kind": "maildir", "path": MAIL_DIR})
    if Role.DIRECTORY in roles:
        # slapcat reads the database as it is at one moment: a consistent copy, server running.
        ldif = f"{SLAPD_DUMP_DIR}/data.ldif"
        paths.append(SLAPD_DUMP_DIR)
        pre.append(
            {
                "dir": SLAPD_DUMP_DIR,
                "command": ["slapcat", "-n", "1", "-o", "ldif-wrap=no", "-l", ldif],
            }
        )
        pre.append(
            {
                "dir": SLAPD_DUMP_DIR,
                "command": [
                    "slapcat",
                    "-n",
                    "0",
                    "-o",
                    "ldif-wrap=no",
                    "-l",
                    f"{SLAPD_DUMP_DIR}/config.ldif",
                ],
            }
        )
        drill.append(
            {"kind": "ldif", "path": ldif, "command": ["slapcat", "-n", "1", "-o", "ldif-wrap=no"]}
        )
    if Role.CMS in roles:
        paths += [CMS_SITES_DIR, DATABASE_DUMP_DIR]
        pre.append({"dir": DATABASE_DUMP_DIR, "command": ["/bin/sh", "-c", _DUMP_DATABASES]})
        drill.append({"kind": "files", "path": DATABASE_DUMP_DIR})
    settings = estate.backup
    parts = int(settings.check_subset.split("/")[1])
    return ClientPlan(
        name=name,
        fleet=fleet,
        sftp_user=f"restic-{name}",
        chroot=f"{CHROOTS_DIR}/{name}",
        backup_host=server,
        backup_address=server_address,
        paths=paths,
        pre=pre,
        drill=drill,
        keep={
            "daily": settings.keep_daily,
            "weekly": settings.keep_weekly,
            "monthly": settings.keep_monthly,
        },
        check_parts=parts,
    )


def _new_key() -> str:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii").rstrip("\n")


def client_key(fleet: str, name: str) -> tuple[str, str]:
    """The client's SSH key for the backup host: (private OpenSSH PEM, public key line)."""
    pem = get_or_create(fleet, f"restic/sftp-key/{name}", _new_key)
    key = serialization.load_ssh_private_key(pem.encode("ascii"), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return pem + "\n", public.decode("ascii")


def restic_password(fleet: str, name: str) -> str:
    """The client's repository password (generated once, 0600 under the secrets directory)."""
    return password(fleet, f"restic/password/{name}", length=40)


def known_hosts_lines(known_hosts: Path, names: list[str]) -> str:
    """The lines of `known_hosts` that pin any of `names` (address, name or fqdn)."""
    try:
        text = known_hosts.read_text(encoding="utf-8")
    except OSError as exc:
        raise BackupError(f"cannot read the pinned host keys {known_hosts}: {exc}") from exc
    wanted = set(names)
    lines = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and wanted & set(line.split()[0].split(","))
    ]
    if not lines:
        raise BackupError(
            f"no pinned host key for {' / '.join(names)} in {known_hosts}; the clients refuse a "
            "backup host whose key is not pinned (add it, then deploy again)"
        )
    return "\n".join(lines) + "\n"
