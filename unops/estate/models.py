"""The estate as typed records: what exists, checked one record at a time.

Cross-references between records (a mailbox's server, a room's access points) are checked in
`unops.estate.checks`, once every file has been read.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# One DNS label (RFC 1123): lower-case letters, digits and inner hyphens, 1 to 63 characters.
# A leading '-' never passes, so a name can never be read as an option by a command.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _check_label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(
            "must be one DNS label: lower-case letters, digits and inner hyphens, "
            "1 to 63 characters, not starting or ending with '-'"
        )
    return value


def _check_domain(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            "must be a lower-case domain of two or more DNS labels separated by dots, "
            "such as 'no.missions.example'"
        )
    return value


def _check_mission_code(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError("must be a two-letter upper-case ISO 3166-1 code, such as 'NO'")
    return value


def _check_address(value: str) -> str:
    local, sep, domain = value.partition("@")
    if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9._+-]{0,63}", local):
        raise ValueError(
            "must be a lower-case address local@domain; the local part takes letters, digits "
            "and . _ + - and does not start with a symbol"
        )
    _check_domain(domain)
    return value


def _check_oid(value: str) -> str:
    if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]{0,9})){1,127}", value):
        raise ValueError(
            "must be a numeric SNMP object identifier without a leading dot, such as "
            "'1.3.6.1.4.1.9.9.273.1.1.2.1.1'"
        )
    return value


HostName = Annotated[str, AfterValidator(_check_label)]
Oid = Annotated[str, AfterValidator(_check_oid)]
DomainName = Annotated[str, AfterValidator(_check_domain)]
MissionCode = Annotated[str, AfterValidator(_check_mission_code)]
MailAddress = Annotated[str, AfterValidator(_check_address)]


class Record(BaseModel):
    """A record read from an estate file: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Role(StrEnum):
    DIRECTORY = "directory"
    MAIL = "mail"
    BACKUP = "backup"
    MONITORING = "monitoring"
    CMS = "cms"
    ACCESS_POINT = "access_point"
    IMAGE_BUILDER = "image_builder"


class Office(Record):
    name: str
    zone: DomainName
    service_desk: MailAddress
    on_call: MailAddress


class Production(Record):
    management_network: IPv4Network


class LabSettings(Record):
    network: IPv4Network
    bridge_address: IPv4Address


class Site(Record):
    """site.toml: the office, its zone and its networks."""

    office: Office
    production: Production
    lab: LabSettings


class Host(Record):
    """A machine the office runs; `lab_address` puts it in the rehearsal fleet."""

    name: HostName
    roles: list[Role] = Field(min_length=1)
    address: IPv4Address
    lab_address: IPv4Address | None = None


class Mission(Record):
    """A permanent mission served by the office (missions.csv)."""

    code: MissionCode
    name: str = Field(min_length=2)
    mail_domain: DomainName | None = None


class MailboxState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Mailbox(Record):
    """One mail account (mailboxes.csv); `server` is its home mail server."""

    address: MailAddress
    mission: MissionCode
    server: HostName
    display_name: str = Field(min_length=1)
    quota_mb: int = Field(gt=0, le=102_400)
    state: MailboxState = MailboxState.ACTIVE


class MailSettings(Record):
    """mail.toml: settings of the mail service that hold for every server."""

    default_quota_mb: int = Field(gt=0, le=102_400)
    # Days a message stays queued while a peer is unreachable before it bounces.
    queue_lifetime_days: int = Field(ge=1, le=14)
    # Largest message accepted, in megabytes.
    message_size_limit_mb: int = Field(ge=1, le=200)


class Floor(Record):
    number: int = Field(ge=-5, le=60)
    name: str


class Building(Record):
    code: HostName
    name: str
    floors: list[Floor] = Field(min_length=1)


class RoomKind(StrEnum):
    PUBLIC_AREA = "public_area"
    CONFERENCE_ROOM = "conference_room"
    OFFICE = "office"


class Room(Record):
    """A room (rooms.csv); public areas and conference rooms need Wi-Fi coverage."""

    building: HostName
    floor: int
    room: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,15}$")
    kind: RoomKind
    capacity: int = Field(gt=0, le=5000)
    phase: int = Field(ge=0, le=20, description="renovation phase in which the room moves")
    served_by: list[HostName] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.building}-{self.floor}-{self.room}"

    @property
    def needs_coverage(self) -> bool:
        return self.kind in (RoomKind.PUBLIC_AREA, RoomKind.CONFERENCE_ROOM)


class AccessPoint(Record):
    """A Wi-Fi access point (wifi.toml), polled over SNMPv3."""

    name: HostName
    building: HostName
    floor: int
    model: str
    address: IPv4Address
    lab_address: IPv4Address | None = None
    # Most clients the radio serves well at once (vendor figure).
    max_clients: int = Field(default=60, gt=0, le=1000)


class WifiSettings(Record):
    ssid: str = Field(min_length=1, max_length=32)
    # Regulatory domain of the radios (ISO 3166-1 alpha-2).
    country: MissionCode
    # Per access point model: the SNMP column whose rows (one per radio) count the associated
    # clients; the exporter sums them. A model left out exports no client count.
    clients_oid: dict[str, Oid] = Field(default_factory=dict)


class CmsSite(Record):
    """A mission website edited by the mission itself (sites.csv)."""

    site: DomainName
    mission: MissionCode
    host: HostName
    editors: int = Field(ge=1, le=50)


class ItemKind(StrEnum):
    CPU = "cpu"
    MONITOR = "monitor"
    PRINTER = "printer"
    OTHER = "other"


class Donation(Record):
    """One donated item (donations.csv): what it was and which mission received it."""

    item: str = Field(pattern=r"^D\d{4}-\d{5}$")
    kind: ItemKind
    serial: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{3,31}$")
    asset_tag: str = Field(pattern=r"^UN-\d{6}$")
    mission: MissionCode
    date: dt.date


class BackupSettings(Record):
    """backup.toml: when and how long backups are kept."""

    # Local time of the daily run (HH:MM) on each backed-up host.
    daily_at: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    keep_daily: int = Field(default=14, ge=1, le=366)
    keep_weekly: int = Field(default=8, ge=0, le=260)
    keep_monthly: int = Field(default=12, ge=0, le=120)
    # Share of the repository's data read by each daily check; 1/7 reads it all once a week.
    check_subset: str = Field(default="1/7", pattern=r"^[1-9]\d*/[1-9]\d*$")
