"""The reconcile plan: roster and directory in, adds/changes/disables/deletes out."""

from __future__ import annotations

import pytest

from unops.directory.plan import Mailbox, plan_sync
from unops.directory.roster import RosterEntry
from unops.errors import DirectoryError

SERVERS = ["mail1", "mail2", "mail3"]


def entry(address: str, server: str | None = None, **extra: object) -> RosterEntry:
    fields: dict[str, object] = {
        "address": address,
        "mission": "NO",
        "display_name": "Ada Lovelace",
        "quota_mb": 2048,
        "server": server,
    }
    fields.update(extra)
    return RosterEntry.model_validate(fields)


def box(address: str, server: str = "mail1", state: str = "active") -> Mailbox:
    return Mailbox(address, "Ada Lovelace", "NO", 2048, state, server)


def test_new_accounts_go_to_the_least_loaded_server() -> None:
    """Without a server column, each new mailbox lands where fewest mailboxes are, ties by name."""
    current = [
        box("a@no.x.example", "mail1"),
        box("b@no.x.example", "mail1"),
        box("c@no.x.example", "mail2"),
    ]
    roster = [entry(b.address, b.server) for b in current]
    roster += [entry(f"n{i}@no.x.example") for i in range(4)]
    plan = plan_sync(current, roster, SERVERS)
    assert [b.server for b in plan.adds] == ["mail3", "mail2", "mail3", "mail1"]


def test_roster_server_is_kept_for_new_accounts() -> None:
    """A roster row that names its server is placed there, whatever the load."""
    plan = plan_sync(
        [box("a@no.x.example", "mail2")],
        [entry("a@no.x.example", "mail2"), entry("n@no.x.example", "mail2")],
        SERVERS,
    )
    assert [(b.address, b.server) for b in plan.adds] == [("n@no.x.example", "mail2")]


def test_matching_directory_gives_an_empty_plan() -> None:
    """When the directory already holds the roster, nothing is planned."""
    current = [box("a@no.x.example"), box("b@no.x.example", "mail2", "disabled")]
    roster = [entry("a@no.x.example", "mail1"), entry("b@no.x.example", "mail2", state="disabled")]
    assert plan_sync(current, roster, SERVERS).empty


def test_existing_mailbox_stays_on_its_server_without_a_server_column() -> None:
    """A roster without a server leaves an existing mailbox's home server alone."""
    plan = plan_sync([box("a@no.x.example", "mail3")], [entry("a@no.x.example")], SERVERS)
    assert plan.empty


def test_differences_become_changes_with_old_and_new_values() -> None:
    """A changed quota or display name is planned as a change carrying both values."""
    plan = plan_sync(
        [box("a@no.x.example")],
        [entry("a@no.x.example", quota_mb=4096, display_name="Ada L.")],
        SERVERS,
    )
    assert plan.adds == [] and len(plan.changes) == 1
    assert dict(plan.changes[0].fields) == {
        "display_name": ("Ada Lovelace", "Ada L."),
        "quota_mb": (2048, 4096),
    }


def test_roster_state_disabled_is_a_disable() -> None:
    """An active mailbox that the roster marks disabled is planned as a disable."""
    plan = plan_sync([box("a@no.x.example")], [entry("a@no.x.example", state="disabled")], SERVERS)
    assert [c.address for c in plan.disables] == ["a@no.x.example"] and not plan.changes


def test_missing_from_roster_is_disabled_not_deleted() -> None:
    """Without --prune an entry the roster lacks is disabled, once; it is never deleted."""
    current = [box("gone@no.x.example"), box("old@no.x.example", state="disabled")]
    plan = plan_sync(current, [], SERVERS)
    assert [c.address for c in plan.disables] == ["gone@no.x.example"]
    assert plan.deletes == []


def test_prune_deletes_what_the_roster_lacks() -> None:
    """With --prune every entry the roster lacks is deleted, disabled or not."""
    current = [box("gone@no.x.example"), box("old@no.x.example", state="disabled")]
    plan = plan_sync(current, [], SERVERS, prune=True)
    assert plan.deletes == ["gone@no.x.example", "old@no.x.example"] and not plan.disables


def test_no_mail_server_is_an_error() -> None:
    """Planning with no mail server to place mailboxes on fails with a clear error."""
    with pytest.raises(DirectoryError, match="no mail server"):
        plan_sync([], [entry("a@no.x.example")], [])
