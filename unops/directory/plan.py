"""The reconcile plan: what the directory holds, what the roster wants, and the difference.

Pure: no connection, no clock. An account in the roster and not in the directory is added,
on the roster's server or else on the least-loaded one; an account in both is changed where they
differ; an account only in the directory is disabled, or deleted when pruning is asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from unops.directory.roster import RosterEntry
from unops.errors import DirectoryError

Field = Literal["display_name", "mission", "quota_mb", "state", "server"]


@dataclass(frozen=True)
class Mailbox:
    """A mailbox entry as the directory holds it (the attributes sync manages)."""

    address: str
    display_name: str
    mission: str
    quota_mb: int
    state: str
    server: str


@dataclass(frozen=True)
class Change:
    """An existing mailbox brought in line: each changed field with its old and new value."""

    address: str
    fields: Mapping[Field, tuple[object, object]]


@dataclass
class Plan:
    adds: list[Mailbox] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    disables: list[Change] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.adds or self.changes or self.disables or self.deletes)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.adds),
            "changed": len(self.changes),
            "disabled": len(self.disables),
            "deleted": len(self.deletes),
        }


def _fields(entry: RosterEntry, server: str) -> dict[Field, object]:
    return {
        "display_name": entry.display_name,
        "mission": entry.mission,
        "quota_mb": entry.quota_mb,
        "state": entry.state.value,
        "server": server,
    }


def _diff(current: Mailbox, wanted: Mapping[Field, object]) -> dict[Field, tuple[object, object]]:
    return {
        name: (getattr(current, name), value)
        for name, value in wanted.items()
        if getattr(current, name) != value
    }


def plan_sync(
    current: Iterable[Mailbox],
    roster: Sequence[RosterEntry],
    servers: Sequence[str],
    *,
    prune: bool = False,
) -> Plan:
    """The plan that makes the directory hold exactly the roster's accounts."""
    if not servers:
        raise DirectoryError("no mail server to place mailboxes on; the estate has none")
    existing = {box.address: box for box in current}
    # Load is every mailbox a server holds, disabled ones too: their mail is still on its disk.
    load = Counter({name: 0 for name in servers})
    load.update(box.server for box in existing.values())
    plan = Plan()

    for entry in roster:
        box = existing.get(entry.address)
        if box is None:
            server = entry.server or min(servers, key=lambda name: (load[name], name))
            load[server] += 1
            assert entry.quota_mb is not None  # read_roster fills in the default
            plan.adds.append(
                Mailbox(
                    entry.address,
                    entry.display_name,
                    entry.mission,
                    entry.quota_mb,
                    entry.state.value,
                    server,
                )
            )
            continue
        # Without a server column, an existing mailbox stays where it is.
        diff = _diff(box, _fields(entry, entry.server or box.server))
        if not diff:
            continue
        change = Change(entry.address, diff)
        if diff.get("state", (None, None))[1] == "disabled":
            plan.disables.append(change)
        else:
            plan.changes.append(change)

    wanted = {entry.address for entry in roster}
    for address in sorted(set(existing) - wanted):
        if prune:
            plan.deletes.append(address)
        elif existing[address].state != "disabled":
            plan.disables.append(Change(address, {"state": (existing[address].state, "disabled")}))
    return plan
