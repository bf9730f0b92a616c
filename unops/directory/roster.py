"""A roster of accounts (CSV) read and checked against the estate, before anything is changed.

Columns, in any order: address, mission, display_name, quota_mb, state and, optionally, server
(the home mail server; without it a new mailbox goes to the least-loaded server). The estate's
inventory/estate/mailboxes.csv is such a roster. Every problem is reported at once, with the
file, the line, the value and what is accepted; a roster with any problem changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pydantic import Field

from unops.errors import DirectoryError, Problem
from unops.estate import Estate
from unops.estate.loading import Reader
from unops.estate.models import HostName, MailAddress, MailboxState, MissionCode, Record

log = logging.getLogger(__name__)


class RosterEntry(Record):
    """One account of a roster; `server` is None when the roster leaves placement to sync."""

    address: MailAddress
    mission: MissionCode
    display_name: str = Field(min_length=1, max_length=256)
    quota_mb: int | None = Field(default=None, gt=0, le=102_400)
    state: MailboxState = MailboxState.ACTIVE
    server: HostName | None = None


class RosterError(DirectoryError):
    """A roster has problems; carries all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        count = len(problems)
        super().__init__(
            f"the roster has {count} problem{'s' if count != 1 else ''}; nothing was changed:"
            f"\n{lines}"
        )


def read_roster(path: Path | str, estate: Estate) -> list[RosterEntry]:
    """Read the roster at `path`, check every row against the estate, and return its entries.

    A missing quota takes the estate's default (mail.toml); the result keeps the file's order.
    """
    path = Path(path)
    if not path.is_file():
        raise DirectoryError(f"roster {path} does not exist or is not a file; expected a CSV file")
    reader = Reader(path.parent)
    rows = reader.csv_rows(path.name, RosterEntry)
    _check_against_estate(reader, path.name, rows, estate)
    if reader.problems:
        raise RosterError(reader.problems)
    default_quota = estate.mail.default_quota_mb
    entries = [
        entry
        if entry.quota_mb is not None
        else entry.model_copy(update={"quota_mb": default_quota})
        for entry, _ in rows
    ]
    log.debug("read %s accounts from %s", len(entries), path)
    return entries


def _check_against_estate(
    reader: Reader, name: str, rows: list[tuple[RosterEntry, int]], estate: Estate
) -> None:
    servers = sorted(host.name for host in estate.hosts_with_role("mail"))
    domain_of = {mission.code: mission.mail_domain for mission in estate.missions}
    seen = Counter(entry.address for entry, _ in rows)
    for entry, line in rows:
        if seen[entry.address] > 1:
            reader.problem(name, f"address {entry.address!r} appears more than once", line)
        if entry.mission not in domain_of:
            reader.problem(
                name,
                f"mission {entry.mission!r} of {entry.address} is not in "
                f"{estate.root / 'missions.csv'}",
                line,
            )
        elif (domain := entry.address.partition("@")[2]) != domain_of[entry.mission]:
            expected = domain_of[entry.mission] or "none (the mission has no mail domain)"
            reader.problem(
                name,
                f"address {entry.address!r} is in {domain!r}; mission {entry.mission}'s mail "
                f"domain is {expected}",
                line,
            )
        if entry.server is not None and entry.server not in servers:
            reader.problem(
                name,
                f"server {entry.server!r} of {entry.address} is not a mail server; accepted: "
                f"{', '.join(servers)} (or leave the column empty to place it automatically)",
                line,
            )
