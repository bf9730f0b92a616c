"""The office's own mailboxes: the service desk and on-call, to which alerts and reports go.

site.toml names both addresses. Those in the office zone are kept by the directory deploy as
mailboxes homed on the first mail server: Alertmanager pages on-call there, DMARC and TLS
reports reach the service desk there. They carry no mission, so `unops directory sync` leaves
them alone. Their passwords are generated into the secrets (mail/office/<local part>); set one
a person will use with `unops directory passwd ADDRESS`.
"""

from __future__ import annotations

from unops.directory import base_dn
from unops.directory.slapd import Entry, office_mailbox_entry
from unops.errors import DirectoryError
from unops.estate import Estate
from unops.estate.models import Role
from unops.secrets import password

# Quota of an office mailbox, in MiB: alerts and reports are small but many.
OFFICE_QUOTA_MB = 10_240


def office_mailboxes(estate: Estate) -> dict[str, str]:
    """{address: what it is} for the office addresses in the office zone, in a stable order."""
    office = estate.site.office
    named = {
        office.service_desk: f"Service desk of the {office.name}",
        office.on_call: f"On-call of the {office.name}",
    }
    return {a: what for a, what in named.items() if a.partition("@")[2] == estate.zone}


def office_entries(estate: Estate, fleet: str) -> list[Entry]:
    """The directory entries of the office mailboxes, homed on the first mail server."""
    servers = sorted(host.name for host in estate.hosts_with_role(Role.MAIL))
    wanted = office_mailboxes(estate)
    if wanted and not servers:
        raise DirectoryError(
            f"site.toml names office addresses ({', '.join(wanted)}) but hosts.toml has no mail "
            "server to keep their mailboxes on"
        )
    base = base_dn(estate.zone)
    return [
        office_mailbox_entry(
            base,
            address,
            servers[0],
            password(fleet, f"mail/office/{address.partition('@')[0]}"),
            description,
            OFFICE_QUOTA_MB,
        )
        for address, description in wanted.items()
    ]
