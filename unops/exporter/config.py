"""What the exporter probes, computed from the estate, and the credentials it reads to do so.

The exporter on the monitoring host has no checkout of the estate: the deploy writes the targets
as JSON (`ExporterConfig.to_json`) and copies the few secrets the exporter needs into the
exporter's own secrets folder. On the control machine both come straight from the estate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unops.errors import ExporterError
from unops.secrets import secret_path

if TYPE_CHECKING:
    # The estate (and pydantic) is only needed where the configuration is made, not served.
    from unops.estate import Estate

# Ports probed the way a client uses them: (kind, port, how TLS starts).
MAIL_ENDPOINTS = (
    ("smtp", 25, "starttls"),
    ("submission", 587, "starttls"),
    ("submissions", 465, "implicit"),
    ("imap", 143, "starttls"),
    ("imaps", 993, "implicit"),
)
# Roles of the hosts whose backups leave records (unops.backup.plan.BACKED_UP_ROLES).
BACKED_UP_ROLES = ("mail", "directory", "cms")
BACKUP_RECORDS = "/var/lib/unops/backup/records.jsonl"
# Names (not values) of the secrets the exporter reads (unops.secrets); the deploy copies them.
LDAP_SECRET = "ldap/exporter"  # noqa: S105
SNMP_AUTH_SECRET = "snmp/exporter/auth"  # noqa: S105
SNMP_PRIV_SECRET = "snmp/exporter/priv"  # noqa: S105
RECORDS_KEY_SECRET = "exporter/records-key"  # noqa: S105
SNMP_USER = "unops-exporter"
# The unprivileged account on each read host that the restricted SSH key logs in as; its group
# may read the backup records (unops.backup.plan.RECORDS_GROUP).
READER_USER = "unops-monitor"


def probe_secret(server: str) -> str:
    """The secret holding the password of the probe mailbox homed on `server`."""
    return f"mail/probe/{server}"


def probe_address(server: str, zone: str) -> str:
    """The probe mailbox homed on `server`; it lives in the office's own zone, not a mission's."""
    return f"probe-{server}@{zone}"


@dataclass(frozen=True)
class Endpoint:
    """One service port to probe: `target` is the short host name, `server_name` the TLS name."""

    kind: str
    target: str
    address: str
    port: int
    tls: str  # "starttls", "implicit" or "none"
    server_name: str


@dataclass(frozen=True)
class WebSite:
    """A CMS site, fetched over HTTPS from the host that serves it, by its own name."""

    site: str
    address: str
    port: int = 443


@dataclass(frozen=True)
class LdapTarget:
    """A directory server: the provider counts mailboxes, a replica says how far behind it is."""

    target: str
    address: str
    server_name: str
    provider: bool


@dataclass(frozen=True)
class MailServer:
    """A mail server with its probe mailbox; mail flows from each to the next in the list."""

    target: str
    address: str
    server_name: str
    probe_user: str
    submission_port: int = 587
    imaps_port: int = 993


@dataclass(frozen=True)
class AccessPointTarget:
    """An access point; `clients_oid`: the column counting its clients, if its model has one."""

    target: str
    address: str
    port: int = 161
    clients_oid: str | None = None


@dataclass(frozen=True)
class BackupHost:
    target: str
    address: str
    port: int = 22


@dataclass(frozen=True)
class ExporterConfig:
    """Everything one exporter probes; no secret is held here, only the names to read them by."""

    fleet: str
    base_dn: str
    endpoints: tuple[Endpoint, ...] = ()
    sites: tuple[WebSite, ...] = ()
    ldap: tuple[LdapTarget, ...] = ()
    mail_servers: tuple[MailServer, ...] = ()
    access_points: tuple[AccessPointTarget, ...] = ()
    backup_hosts: tuple[BackupHost, ...] = ()
    # TLS peers are checked against this CA file; None means the system's trust store.
    ca_file: str | None = None
    known_hosts: str | None = None
    snmp_user: str = SNMP_USER
    # SNMPv3 context the agents answer in: the default (empty) one on real access points.
    snmp_context: str = ""
    records_path: str = BACKUP_RECORDS
    # Seconds between two end-to-end mail flow rounds (they run in the background, not per scrape).
    mail_flow_interval: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> ExporterConfig:
        try:
            data = json.loads(text)
            return cls(
                fleet=data["fleet"],
                base_dn=data["base_dn"],
                endpoints=tuple(Endpoint(**item) for item in data.get("endpoints", [])),
                sites=tuple(WebSite(**item) for item in data.get("sites", [])),
                ldap=tuple(LdapTarget(**item) for item in data.get("ldap", [])),
                mail_servers=tuple(MailServer(**item) for item in data.get("mail_servers", [])),
                access_points=tuple(
                    AccessPointTarget(**item) for item in data.get("access_points", [])
                ),
                backup_hosts=tuple(BackupHost(**item) for item in data.get("backup_hosts", [])),
                ca_file=data.get("ca_file"),
                known_hosts=data.get("known_hosts"),
                snmp_user=data.get("snmp_user", SNMP_USER),
                snmp_context=data.get("snmp_context", ""),
                records_path=data.get("records_path", BACKUP_RECORDS),
                mail_flow_interval=float(data.get("mail_flow_interval", 120.0)),
                extra=data.get("extra", {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ExporterError(
                f"exporter configuration {source} is not valid: {exc!r}; it is written by "
                "deploys/monitoring.py (ExporterConfig.to_json), regenerate it with a deploy"
            ) from exc

    @classmethod
    def load(cls, path: Path) -> ExporterConfig:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ExporterError(f"cannot read exporter configuration {path}: {exc}") from exc
        return cls.from_json(text, str(path))


def config_from_estate(
    estate: Estate,
    fleet: str,
    *,
    ca_file: str | None = None,
    known_hosts: str | None = None,
) -> ExporterConfig:
    """The targets of `fleet` ('lab' or 'production'): every host of the fleet with a service."""

    def address_of(name: str) -> str | None:
        host = estate.host(name)
        address = host.lab_address if fleet == "lab" else host.address
        return str(address) if address is not None else None

    endpoints: list[Endpoint] = []
    mail_servers: list[MailServer] = []
    ldap: list[LdapTarget] = []
    for host in estate.hosts_with_role("mail"):
        address = address_of(host.name)
        if address is None:
            continue
        fqdn = estate.fqdn(host.name)
        endpoints += [
            Endpoint(kind, host.name, address, port, tls, fqdn)
            for kind, port, tls in MAIL_ENDPOINTS
        ]
        mail_servers.append(
            MailServer(host.name, address, fqdn, probe_address(host.name, estate.zone))
        )
        # Each mail server carries a read-only replica of the directory (docs/directory.md).
        ldap.append(LdapTarget(host.name, address, fqdn, provider=False))
    for host in estate.hosts_with_role("directory"):
        address = address_of(host.name)
        if address is not None:
            ldap.insert(0, LdapTarget(host.name, address, estate.fqdn(host.name), provider=True))

    sites = [
        WebSite(site.site, address)
        for site in sorted(estate.sites, key=lambda s: s.site)
        if (address := address_of(site.host)) is not None
    ]
    access_points = [
        AccessPointTarget(
            ap.name, str(ap_address), clients_oid=estate.wifi.clients_oid.get(ap.model)
        )
        for ap in estate.access_points
        if (ap_address := ap.lab_address if fleet == "lab" else ap.address) is not None
    ]
    backup_hosts = [
        BackupHost(host.name, address)
        for host in estate.hosts
        if any(role.value in BACKED_UP_ROLES for role in host.roles)
        and (address := address_of(host.name)) is not None
    ]
    base_dn = ",".join(f"dc={part}" for part in estate.zone.split("."))
    return ExporterConfig(
        fleet=fleet,
        base_dn=base_dn,
        endpoints=tuple(endpoints),
        sites=tuple(sites),
        ldap=tuple(ldap),
        mail_servers=tuple(mail_servers),
        access_points=tuple(access_points),
        backup_hosts=tuple(backup_hosts),
        ca_file=ca_file,
        known_hosts=known_hosts,
    )


def read_secret(fleet: str, name: str) -> str | None:
    """A secret the deploy put in place, or None if it is missing: the exporter never makes one."""
    path = secret_path(fleet, name)
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ExporterError(f"cannot read secret {name!r} at {path}: {exc}") from exc
