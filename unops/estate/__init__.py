"""The estate: every mission, host, mailbox, room, access point, site and donated item, as data.

`load_estate()` reads `inventory/estate/`, checks every record and every reference between
records, and either returns the whole estate or raises `EstateError` with all problems at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from unops import PROJECT_ROOT
from unops.errors import EstateError, Problem, UnopsError
from unops.estate.checks import check_references
from unops.estate.loading import Reader
from unops.estate.models import (
    AccessPoint,
    BackupSettings,
    Building,
    CmsSite,
    Donation,
    Host,
    Mailbox,
    MailSettings,
    Mission,
    Role,
    Room,
    Site,
    WifiSettings,
)

DEFAULT_ROOT = PROJECT_ROOT / "inventory" / "estate"

__all__ = ["DEFAULT_ROOT", "Estate", "LabHost", "load_estate"]


@dataclass(frozen=True)
class LabHost:
    """A host of the rehearsal fleet: its name, its fully qualified name, address and roles."""

    name: str
    fqdn: str
    address: IPv4Address
    roles: tuple[Role, ...]


@dataclass(frozen=True)
class Estate:
    """The whole estate, valid as a whole."""

    root: Path
    site: Site
    hosts: tuple[Host, ...]
    missions: tuple[Mission, ...]
    mail: MailSettings
    mailboxes: tuple[Mailbox, ...]
    buildings: tuple[Building, ...]
    rooms: tuple[Room, ...]
    wifi: WifiSettings
    access_points: tuple[AccessPoint, ...]
    sites: tuple[CmsSite, ...]
    donations: tuple[Donation, ...]
    backup: BackupSettings

    @property
    def zone(self) -> str:
        return self.site.office.zone

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.zone}"

    def hosts_with_role(self, role: Role | str) -> list[Host]:
        return [host for host in self.hosts if Role(role) in host.roles]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise UnopsError(f"host {name!r} is not in {self.root / 'hosts.toml'}; known: {known}")

    def mission(self, code: str) -> Mission:
        for mission in self.missions:
            if mission.code == code:
                return mission
        raise UnopsError(f"mission {code!r} is not in {self.root / 'missions.csv'}")

    @property
    def mission_mail_domains(self) -> list[str]:
        """The missions' mail domains, sorted."""
        return sorted(m.mail_domain for m in self.missions if m.mail_domain)

    @property
    def mail_domains(self) -> list[str]:
        """Every domain the mail servers accept: the missions' and, last, the office zone.

        The office zone holds the office's own addresses: the service desk and on-call, to which
        alerts and DMARC reports go, and the monitoring probe mailboxes.
        """
        missions = self.mission_mail_domains
        return missions if self.zone in missions else [*missions, self.zone]

    def mailboxes_on(self, server: str) -> list[Mailbox]:
        return [box for box in self.mailboxes if box.server == server]

    def lab_hosts(self) -> list[LabHost]:
        """The hosts and access points that have a lab address, in address order."""
        fleet = [
            LabHost(h.name, self.fqdn(h.name), h.lab_address, tuple(h.roles))
            for h in self.hosts
            if h.lab_address is not None
        ]
        fleet += [
            LabHost(ap.name, self.fqdn(ap.name), ap.lab_address, (Role.ACCESS_POINT,))
            for ap in self.access_points
            if ap.lab_address is not None
        ]
        return sorted(fleet, key=lambda host: host.address)

    def summary(self) -> dict[str, object]:
        """What the estate holds, in numbers, for `unops estate check`."""
        roles = Counter(role.value for host in self.hosts for role in host.roles)
        roles["access_point"] = len(self.access_points)
        donated = Counter(item.kind.value for item in self.donations)
        return {
            "missions": len(self.missions),
            "mail_domains": len(self.mail_domains),
            "mission_mail_domains": len(self.mission_mail_domains),
            "hosts_by_role": dict(sorted(roles.items())),
            "mailboxes": len(self.mailboxes),
            "mailboxes_by_server": dict(
                sorted(Counter(box.server for box in self.mailboxes).items())
            ),
            "buildings": len(self.buildings),
            "rooms": len(self.rooms),
            "rooms_needing_coverage": sum(1 for room in self.rooms if room.needs_coverage),
            "cms_sites": len(self.sites),
            "donations_by_kind": dict(sorted(donated.items())),
            "donations_total": len(self.donations),
            "lab_hosts": len(self.lab_hosts()),
        }


def load_estate(root: Path | str | None = None) -> Estate:
    """Read and check the estate under `root` (default `inventory/estate/`)."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    reader = Reader(root)
    if not root.is_dir():
        raise EstateError([_missing_root(root)])

    site_file = reader.toml("site.toml")
    site = site_file.validate_document(Site) if site_file else None

    hosts_file = reader.toml("hosts.toml")
    hosts = list(hosts_file.validate_all("host", Host)) if hosts_file else []

    missions = reader.csv_rows("missions.csv", Mission)

    mail_file = reader.toml("mail.toml")
    mail = mail_file.validate("mail", MailSettings) if mail_file else None
    mailboxes = reader.csv_rows("mailboxes.csv", Mailbox)

    buildings_file = reader.toml("buildings.toml")
    buildings = list(buildings_file.validate_all("building", Building)) if buildings_file else []
    rooms = reader.csv_rows("rooms.csv", Room, list_columns=("served_by",))

    wifi_file = reader.toml("wifi.toml")
    wifi = wifi_file.validate("wifi", WifiSettings) if wifi_file else None
    access_points = list(wifi_file.validate_all("access_point", AccessPoint)) if wifi_file else []

    sites = reader.csv_rows("sites.csv", CmsSite)
    donations = reader.csv_rows("donations.csv", Donation)

    backup_file = reader.toml("backup.toml")
    backup = backup_file.validate("backup", BackupSettings) if backup_file else None

    if wifi is not None:
        models = {ap.model for ap, _ in access_points}
        for model in sorted(set(wifi.clients_oid) - models):
            reader.problem(
                "wifi.toml",
                f"[wifi.clients_oid] names model {model!r}, which no access point has; "
                f"models in use: {', '.join(sorted(models)) or 'none'}",
            )

    if site is not None:
        check_references(
            reader,
            site=site,
            hosts=hosts,
            missions=missions,
            mailboxes=mailboxes,
            buildings=buildings,
            rooms=rooms,
            access_points=access_points,
            sites=sites,
            donations=donations,
        )

    if reader.problems or site is None or mail is None or wifi is None or backup is None:
        raise EstateError(reader.problems)
    return Estate(
        root=root,
        site=site,
        hosts=tuple(host for host, _ in hosts),
        missions=tuple(mission for mission, _ in missions),
        mail=mail,
        mailboxes=tuple(box for box, _ in mailboxes),
        buildings=tuple(building for building, _ in buildings),
        rooms=tuple(room for room, _ in rooms),
        wifi=wifi,
        access_points=tuple(ap for ap, _ in access_points),
        sites=tuple(cms_site for cms_site, _ in sites),
        donations=tuple(item for item, _ in donations),
        backup=backup,
    )


def _missing_root(root: Path) -> Problem:
    return Problem(root, "is not a directory; expected the estate folder (inventory/estate)")
