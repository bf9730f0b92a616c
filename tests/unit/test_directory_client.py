"""The ldap3 client functions against ldap3's MOCK_SYNC strategy: no network."""

from __future__ import annotations

import pytest
from ldap3 import MOCK_SYNC, Connection, Server

from unops.directory import mailbox_dn, mailboxes_dn, services_dn
from unops.directory.client import (
    apply_plan,
    context_csn,
    find_mailbox,
    read_mailboxes,
    set_password,
)
from unops.directory.plan import Change, Mailbox, Plan
from unops.directory.slapd import check_ssha
from unops.errors import DirectoryError

BASE = "dc=ict,dc=example"


@pytest.fixture
def conn() -> Connection:
    connection = Connection(Server("mock"), client_strategy=MOCK_SYNC)
    connection.strategy.add_entry(BASE, {"objectClass": ["dcObject"], "dc": "ict"})
    connection.strategy.add_entry(mailboxes_dn(BASE), {"objectClass": ["organizationalUnit"]})
    connection.strategy.add_entry(services_dn(BASE), {"objectClass": ["organizationalUnit"]})
    connection.bind()
    return connection


def box(address: str, server: str = "mail1", state: str = "active") -> Mailbox:
    return Mailbox(address, "Ada Lovelace", "NO", 2048, state, server)


def test_apply_then_read_returns_the_same_mailboxes(conn: Connection) -> None:
    """Mailboxes added by apply_plan are read back with every synced field intact."""
    added = [box("ada@no.missions.example"), box("bob@no.missions.example", "mail2")]
    apply_plan(conn, BASE, Plan(adds=added))
    assert read_mailboxes(conn, BASE) == added


def test_changes_and_disables_replace_the_attributes(conn: Connection) -> None:
    """A change replaces cn and sn together; a disable sets unopsAccountState to disabled."""
    apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))
    plan = Plan(
        changes=[Change("ada@no.missions.example", {"display_name": ("Ada Lovelace", "Ada L.")})],
    )
    apply_plan(conn, BASE, plan)
    apply_plan(
        conn, BASE, Plan(disables=[Change("ada@no.missions.example", {"state": ("a", "disabled")})])
    )
    [current] = read_mailboxes(conn, BASE)
    assert (current.display_name, current.state) == ("Ada L.", "disabled")
    conn.search(mailbox_dn(BASE, "ada@no.missions.example"), "(objectClass=*)", attributes=["sn"])
    assert conn.entries[0].sn.value == "Ada L."


def test_office_accounts_without_a_mission_are_not_read_as_mission_mailboxes(
    conn: Connection,
) -> None:
    """A probe mailbox (no unopsMission) is left out, so sync never disables or prunes it."""
    apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))
    conn.strategy.add_entry(
        mailbox_dn(BASE, "probe-mail1@ict.example"),
        {
            "objectClass": ["inetOrgPerson", "unopsMailbox"],
            "mail": "probe-mail1@ict.example",
            "cn": "probe",
            "sn": "probe",
            "unopsHomeServer": "mail1",
            "unopsAccountState": "active",
        },
    )
    assert [b.address for b in read_mailboxes(conn, BASE)] == ["ada@no.missions.example"]


def test_delete_removes_the_entry(conn: Connection) -> None:
    """A planned delete removes the mailbox entry from the directory."""
    apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))
    apply_plan(conn, BASE, Plan(deletes=["ada@no.missions.example"]))
    assert read_mailboxes(conn, BASE) == []


def test_apply_reports_progress_per_entry(conn: Connection) -> None:
    """apply_plan calls the progress callback once for each entry it writes."""
    steps: list[int] = []
    apply_plan(
        conn,
        BASE,
        Plan(adds=[box("a@no.missions.example"), box("b@no.missions.example")]),
        progress=steps.append,
    )
    assert steps == [1, 1]


def test_refused_write_names_the_address(conn: Connection) -> None:
    """Adding an entry that exists fails with a DirectoryError that names the address."""
    apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))
    with pytest.raises(DirectoryError, match=r"add ada@no\.missions\.example"):
        apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))


def test_set_password_stores_a_salted_hash_of_it(conn: Connection) -> None:
    """passwd stores an {SSHA} hash that verifies the password, never the password itself."""
    apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))
    set_password(conn, BASE, "ada@no.missions.example", "correct horse")
    conn.search(
        mailbox_dn(BASE, "ada@no.missions.example"), "(objectClass=*)", attributes=["userPassword"]
    )
    stored = conn.entries[0].userPassword.value
    stored = stored.decode() if isinstance(stored, bytes) else stored
    assert stored != "correct horse"
    assert check_ssha("correct horse", stored)


def test_set_password_of_unknown_mailbox_is_refused(conn: Connection) -> None:
    """passwd for an address the directory does not hold fails and names the address."""
    with pytest.raises(DirectoryError, match=r"no mailbox 'nobody@no\.missions\.example'"):
        set_password(conn, BASE, "nobody@no.missions.example", "secret")


def test_lookup_escapes_filter_characters(conn: Connection) -> None:
    """An address holding filter syntax matches nothing instead of widening the search."""
    apply_plan(conn, BASE, Plan(adds=[box("ada@no.missions.example")]))
    with pytest.raises(DirectoryError, match="no mailbox"):
        find_mailbox(conn, BASE, "*")


def test_context_csn_is_empty_without_one(conn: Connection) -> None:
    """A base entry without contextCSN (a mock, or a replica never synced) gives no values."""
    assert context_csn(conn, BASE) == []
