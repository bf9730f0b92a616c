"""Reading a roster: the sample estate roster passes, bad rows are reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from unops.directory.roster import RosterError, read_roster
from unops.estate import DEFAULT_ROOT, Estate, load_estate

HEADER = "address,mission,display_name,quota_mb,state\n"


@pytest.fixture(scope="module")
def estate() -> Estate:
    return load_estate()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_roster_of_the_estate_is_accepted(estate: Estate) -> None:
    """inventory/estate/mailboxes.csv reads as a roster of all 792 accounts with servers."""
    entries = read_roster(DEFAULT_ROOT / "mailboxes.csv", estate)
    assert len(entries) == len(estate.mailboxes) == 792
    assert all(entry.server is not None for entry in entries)


def test_missing_quota_takes_the_estate_default(estate: Estate, tmp_path: Path) -> None:
    """A row without quota_mb gets mail.toml's default quota."""
    path = write(tmp_path, HEADER + "ada@no.missions.example,NO,Ada,,active\n")
    [entry] = read_roster(path, estate)
    assert entry.quota_mb == estate.mail.default_quota_mb and entry.server is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("ada@no.missions.example,ZZ,Ada,10,active,", "mission 'ZZ'"),
        ("ada@se.missions.example,NO,Ada,10,active,", "mission NO's mail domain is"),
        ("ada@no.missions.example,NO,Ada,10,frozen,", "'state'"),
        ("ada@no.missions.example,NO,Ada,-1,active,", "'quota_mb'"),
        ("Ada,Lovelace@no.missions.example,NO,Ada,10,active,", "row has 7 cells"),
        ("ada@no.missions.example,NO,Ada,10,active,mx9", "server 'mx9'"),
    ],
)
def test_bad_rows_are_reported_with_file_line_and_value(
    estate: Estate, tmp_path: Path, row: str, message: str
) -> None:
    """Each kind of bad value is reported at its line, in the named file, with the value."""
    header = HEADER.replace("state\n", "state,server\n")
    path = write(tmp_path, header + "bob@no.missions.example,NO,Bob,10,active,mail1\n" + row + "\n")
    with pytest.raises(RosterError) as caught:
        read_roster(path, estate)
    assert f"{path}:3" in str(caught.value)
    assert message in str(caught.value)


def test_duplicate_addresses_are_refused(estate: Estate, tmp_path: Path) -> None:
    """An address that appears twice is a problem on both lines."""
    row = "ada@no.missions.example,NO,Ada,10,active\n"
    path = write(tmp_path, HEADER + row + row)
    with pytest.raises(RosterError, match="appears more than once") as caught:
        read_roster(path, estate)
    assert len(caught.value.problems) == 2


def test_unknown_column_is_refused(estate: Estate, tmp_path: Path) -> None:
    """A column that is not part of a roster is reported with the accepted columns."""
    path = write(
        tmp_path, "address,mission,display_name,colour\nada@no.missions.example,NO,A,red\n"
    )
    with pytest.raises(RosterError, match="accepted columns"):
        read_roster(path, estate)
