"""The office's own mailboxes: which addresses, where they are homed, what their entries hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from unops.directory.office import office_entries, office_mailboxes
from unops.directory.slapd import check_ssha
from unops.estate import load_estate


def test_service_desk_and_on_call_of_the_office_zone_get_mailboxes() -> None:
    """Both addresses site.toml names are in ict.example, so both get a mailbox."""
    assert list(office_mailboxes(load_estate())) == [
        "servicedesk@ict.example",
        "oncall@ict.example",
    ]


def test_an_office_address_outside_the_zone_gets_no_mailbox_here() -> None:
    """An on-call address at another provider is mail we send, not a mailbox we keep."""
    estate = load_estate()
    office = estate.site.office.model_copy(update={"on_call": "pager@example.net"})
    estate = dataclasses.replace(estate, site=estate.site.model_copy(update={"office": office}))
    assert list(office_mailboxes(estate)) == ["servicedesk@ict.example"]


def test_office_entries_are_homed_on_the_first_mail_server_with_a_kept_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Homed on mail1, active, no mission; the password is generated once and reused."""
    monkeypatch.setattr("unops.secrets.SECRETS_DIR", tmp_path)
    entries = office_entries(load_estate(), "lab")
    oncall = next(e for e in entries if "oncall@" in e.name).add
    assert "dn: mail=oncall@ict.example,ou=mailboxes,dc=ict,dc=example\n" in oncall
    assert "unopsHomeServer: mail1\n" in oncall and "unopsMission" not in oncall
    secret = (tmp_path / "lab" / "mail" / "office" / "oncall").read_text().strip()
    hashed = next(line for line in oncall.splitlines() if line.startswith("userPassword: "))
    assert check_ssha(secret, hashed.split(": ", 1)[1])
    assert office_entries(load_estate(), "lab") == entries
