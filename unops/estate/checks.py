"""Checks that span records: duplicates, references between files, and the networks' bounds."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from unops.estate.loading import Reader
from unops.estate.models import (
    AccessPoint,
    Building,
    CmsSite,
    Donation,
    Host,
    Mailbox,
    MailboxState,
    Mission,
    Role,
    Room,
    Site,
)

T = TypeVar("T")


def _known(values: Iterable[str], limit: int = 8) -> str:
    """A short list of accepted values for an error message."""
    items = sorted(set(values))
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "") or "none"


def _unknown_floor(
    reader: Reader,
    floors: set[tuple[str, int]],
    building_codes: set[str],
    building: str,
    floor: int,
) -> str | None:
    """What is wrong with a reference to `floor` of `building`, or None when it is known (or the
    building's own record was rejected, which has already been reported)."""
    if (building, floor) in floors or reader.was_rejected("buildings.toml", building):
        return None
    return (
        f"floor {floor} of building {building!r} is not in buildings.toml; "
        f"known buildings: {_known(building_codes)}"
    )


def _duplicates(
    reader: Reader,
    name: str,
    records: list[tuple[T, int]],
    key: Callable[[T], Hashable],
    what: str,
) -> None:
    seen: dict[Hashable, int] = {}
    for record, line in records:
        value = key(record)
        if value is None:
            continue
        if value in seen:
            reader.problem(
                name, f"duplicate {what} {value!s}; first given on line {seen[value]}", line
            )
        else:
            seen[value] = line


def check_references(
    reader: Reader,
    *,
    site: Site,
    hosts: list[tuple[Host, int]],
    missions: list[tuple[Mission, int]],
    mailboxes: list[tuple[Mailbox, int]],
    buildings: list[tuple[Building, int]],
    rooms: list[tuple[Room, int]],
    access_points: list[tuple[AccessPoint, int]],
    sites: list[tuple[CmsSite, int]],
    donations: list[tuple[Donation, int]],
) -> None:
    """Report every reference to something that does not exist, and every duplicate."""
    # Hosts and access points share one name space and one address space: both are machines.
    machines: list[tuple[Host | AccessPoint, int]] = [*hosts, *access_points]
    machine_file = {id(m): "hosts.toml" for m, _ in hosts} | {
        id(m): "wifi.toml" for m, _ in access_points
    }
    seen_names: dict[str, str] = {}
    seen_addresses: dict[object, str] = {}
    lab = site.lab
    management = site.production.management_network
    for machine, line in machines:
        file = machine_file[id(machine)]
        if machine.name in seen_names:
            reader.problem(
                file,
                f"duplicate host name {machine.name!r}; also in {seen_names[machine.name]}",
                line,
            )
        seen_names.setdefault(machine.name, file)
        for field, address in (("address", machine.address), ("lab_address", machine.lab_address)):
            if address is None:
                continue
            if address in seen_addresses:
                reader.problem(
                    file,
                    f"{machine.name}: duplicate {field} {address}; "
                    f"already used by {seen_addresses[address]}",
                    line,
                )
            seen_addresses.setdefault(address, machine.name)
        if machine.address not in management:
            reader.problem(
                file,
                f"{machine.name}: address {machine.address} is outside the management network "
                f"{management} (site.toml)",
                line,
            )
        if machine.lab_address is not None and (
            machine.lab_address not in lab.network
            or machine.lab_address in (lab.bridge_address, lab.network.network_address)
            or machine.lab_address == lab.network.broadcast_address
        ):
            reader.problem(
                file,
                f"{machine.name}: lab_address {machine.lab_address} must be a host address in "
                f"the lab network {lab.network} other than the bridge {lab.bridge_address}",
                line,
            )

    host_names = {host.name for host, _ in hosts}
    mail_servers = {host.name for host, _ in hosts if Role.MAIL in host.roles}
    cms_hosts = {host.name for host, _ in hosts if Role.CMS in host.roles}
    # A host whose record is invalid is not in `hosts`; its roles are unknown, so a missing
    # role would only repeat that problem.
    hosts_file = reader.root / "hosts.toml"
    if not any(problem.file == hosts_file for problem in reader.problems):
        for role in (Role.DIRECTORY, Role.BACKUP, Role.MONITORING):
            if not any(role in host.roles for host, _ in hosts):
                reader.problem(
                    "hosts.toml", f"no host has the role {role.value!r}; one is required"
                )
        if not mail_servers:
            reader.problem("hosts.toml", "no host has the role 'mail'; at least one is required")
    for host, line in hosts:
        if Role.ACCESS_POINT in host.roles:
            reader.problem(
                "hosts.toml",
                f"{host.name}: access points are listed in wifi.toml, not hosts.toml",
                line,
            )

    _duplicates(reader, "missions.csv", missions, lambda m: m.code, "mission code")
    _duplicates(reader, "missions.csv", missions, lambda m: m.mail_domain, "mail domain")
    codes = {mission.code for mission, _ in missions}
    domain_of = {mission.code: mission.mail_domain for mission, _ in missions}

    _duplicates(reader, "mailboxes.csv", mailboxes, lambda b: b.address, "mailbox address")
    for box, line in mailboxes:
        if box.server not in mail_servers and not reader.was_rejected("hosts.toml", box.server):
            reader.problem(
                "mailboxes.csv",
                f"{box.address}: server {box.server!r} is not a mail server in hosts.toml; "
                f"known: {_known(mail_servers)}",
                line,
            )
        if box.mission not in codes:
            if reader.was_rejected("missions.csv", box.mission):
                continue
            reader.problem(
                "mailboxes.csv",
                f"{box.address}: unknown mission code {box.mission!r}; see missions.csv",
                line,
            )
        elif domain_of[box.mission] is None:
            reader.problem(
                "mailboxes.csv",
                f"{box.address}: mission {box.mission} has no mail_domain in missions.csv",
                line,
            )
        elif box.address.partition("@")[2] != domain_of[box.mission]:
            reader.problem(
                "mailboxes.csv",
                f"{box.address}: the domain must be {box.mission}'s mail domain "
                f"{domain_of[box.mission]}",
                line,
            )
    if mailboxes and not any(box.state is MailboxState.ACTIVE for box, _ in mailboxes):
        reader.problem("mailboxes.csv", "no mailbox is active")

    _duplicates(reader, "buildings.toml", buildings, lambda b: b.code, "building code")
    floors = {(b.code, floor.number) for b, _ in buildings for floor in b.floors}
    building_codes = {b.code for b, _ in buildings}
    ap_names = {ap.name for ap, _ in access_points}
    ap_building = {ap.name: ap.building for ap, _ in access_points}
    for ap, line in access_points:
        if unknown := _unknown_floor(reader, floors, building_codes, ap.building, ap.floor):
            reader.problem("wifi.toml", f"{ap.name}: {unknown}", line)

    _duplicates(reader, "rooms.csv", rooms, lambda r: r.key, "room")
    for room, line in rooms:
        if unknown := _unknown_floor(reader, floors, building_codes, room.building, room.floor):
            reader.problem("rooms.csv", f"room {room.room}: {unknown}", line)
        for served_by in room.served_by:
            if served_by in ap_building and ap_building[served_by] != room.building:
                reader.problem(
                    "rooms.csv",
                    f"room {room.room} of building {room.building!r} is served by {served_by}, "
                    f"an access point of building {ap_building[served_by]!r}; an access point "
                    "serves rooms of its own building",
                    line,
                )
            if served_by not in ap_names and not reader.was_rejected("wifi.toml", served_by):
                reader.problem(
                    "rooms.csv",
                    f"room {room.room}: served by unknown access point {served_by!r}; "
                    f"known: {_known(ap_names)}",
                    line,
                )

    _duplicates(reader, "sites.csv", sites, lambda s: s.site, "site")
    for cms_site, line in sites:
        if cms_site.mission not in codes and not reader.was_rejected(
            "missions.csv", cms_site.mission
        ):
            reader.problem(
                "sites.csv",
                f"{cms_site.site}: owner mission {cms_site.mission!r} is not in missions.csv",
                line,
            )
        if cms_site.host not in cms_hosts and not reader.was_rejected("hosts.toml", cms_site.host):
            where = "is not a cms host" if cms_site.host in host_names else "is not in hosts.toml"
            reader.problem(
                "sites.csv",
                f"{cms_site.site}: host {cms_site.host!r} {where}; known: {_known(cms_hosts)}",
                line,
            )

    _duplicates(reader, "donations.csv", donations, lambda d: d.item, "item")
    _duplicates(reader, "donations.csv", donations, lambda d: d.serial, "serial number")
    _duplicates(reader, "donations.csv", donations, lambda d: d.asset_tag, "asset tag")
    for item, line in donations:
        if item.mission not in codes and not reader.was_rejected("missions.csv", item.mission):
            reader.problem(
                "donations.csv",
                f"{item.item}: recipient mission {item.mission!r} is not in missions.csv",
                line,
            )
        if not item.item.startswith(f"D{item.date.year}-"):
            reader.problem(
                "donations.csv",
                f"{item.item}: the item number's year must match its date {item.date}",
                line,
            )
