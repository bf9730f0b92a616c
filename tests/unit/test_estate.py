"""The estate: the sample loads with its known figures, and each broken estate says what broke."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from unops.cli import cli
from unops.errors import EstateError, Problem
from unops.estate import DEFAULT_ROOT, load_estate


def test_sample_estate_holds_the_offices_figures() -> None:
    """The sample estate is valid and holds 190 missions, 792 mailboxes on 4 servers, 60 sites."""
    summary = load_estate().summary()

    assert summary["missions"] == 190
    assert summary["mission_mail_domains"] == 190
    # The office zone is served too: alerts, DMARC reports and probe mailboxes live there.
    assert summary["mail_domains"] == 191
    assert summary["mailboxes"] == 792
    assert summary["hosts_by_role"]["mail"] == 4  # type: ignore[index]
    assert summary["cms_sites"] == 60
    assert summary["donations_by_kind"] == {
        "cpu": 1067,
        "monitor": 933,
        "printer": 345,
        "other": 50,
    }
    assert summary["donations_total"] == 2395


def test_sample_estate_methods_answer_from_the_data() -> None:
    """hosts_with_role, mailboxes_on and lab_hosts agree with the files."""
    estate = load_estate()

    mail = [host.name for host in estate.hosts_with_role("mail")]
    assert mail == ["mail1", "mail2", "mail3", "mail4"]
    assert sum(len(estate.mailboxes_on(name)) for name in mail) == 792
    assert estate.fqdn("mail1") == "mail1.ict.example"
    addresses = [host.address for host in estate.lab_hosts()]
    assert addresses == sorted(addresses)


@dataclass(frozen=True)
class Fault:
    """One change to one estate file, and what the problem it causes must say."""

    file: str
    old: str
    new: str
    says: str
    # The line the problem must name: "old" for the line where `old` stood, a number, or None.
    line: int | str | None = "old"


FAULTS = {
    "unknown_key": Fault(
        "hosts.toml",
        'lab_address = "198.18.0.10"',
        'lab_adress = "198.18.0.10"',
        "unknown key 'lab_adress' (value '198.18.0.10')",
    ),
    "name_starting_with_dash": Fault(
        "hosts.toml",
        'name = "dir1"',
        'name = "-dir1"',
        "'name' must be one DNS label",
    ),
    "bad_hostname": Fault(
        "hosts.toml",
        'name = "mail4"',
        'name = "Mail_4"',
        "got 'Mail_4'",
    ),
    "bad_ip_address": Fault(
        "hosts.toml",
        'address = "203.0.113.10"',
        'address = "203.0.113.300"',
        "'address' input is not a valid IPv4 address; got '203.0.113.300'",
    ),
    "duplicate_address": Fault(
        "hosts.toml",
        'address = "203.0.113.11"',
        'address = "203.0.113.10"',
        "mail1: duplicate address 203.0.113.10; already used by dir1",
        line=11,
    ),
    "duplicate_host_name": Fault(
        "hosts.toml",
        'name = "mail2"',
        'name = "mail1"',
        "duplicate host name 'mail1'; also in hosts.toml",
        line=17,
    ),
    "unknown_role": Fault(
        "hosts.toml",
        'roles = ["backup"]',
        'roles = ["backups"]',
        "'roles.0' must be one of 'directory', 'mail'",
    ),
    "lab_address_outside_lab": Fault(
        "hosts.toml",
        'lab_address = "198.18.0.20"',
        'lab_address = "198.18.7.20"',
        "backup1: lab_address 198.18.7.20 must be a host address in the lab network",
        line=35,
    ),
    "invalid_toml": Fault(
        "hosts.toml",
        'roles = ["directory"]',
        'roles = ["directory"',
        "is not valid TOML: Unclosed array",
        line=8,
    ),
    "unknown_mission_code": Fault(
        "mailboxes.csv",
        "info@af.missions.example,AF,",
        "info@af.missions.example,XX,",
        "info@af.missions.example: unknown mission code 'XX'",
    ),
    "mailbox_on_unknown_server": Fault(
        "mailboxes.csv",
        "hiro.mensah@af.missions.example,AF,mail2",
        "hiro.mensah@af.missions.example,AF,mail9",
        "server 'mail9' is not a mail server in hosts.toml; known: mail1, mail2, mail3, mail4",
    ),
    "mailbox_domain_not_its_missions": Fault(
        "mailboxes.csv",
        "omar.abebe@af.missions.example",
        "omar.abebe@al.missions.example",
        "omar.abebe@al.missions.example: the domain must be AF's mail domain af.missions.example",
    ),
    "bad_quota": Fault(
        "mailboxes.csv",
        "Wei Mensah,2048,",
        "Wei Mensah,-5,",
        "'quota_mb' input should be greater than 0; got '-5'",
    ),
    "duplicate_mission_code": Fault(
        "missions.csv",
        "AL,Albania,",
        "AF,Albania,",
        "duplicate mission code AF; first given on line 2",
    ),
    "room_served_by_unknown_access_point": Fault(
        "rooms.csv",
        "ga,1,101C,conference_room,40,2,ap-ga1-01",
        "ga,1,101C,conference_room,40,2,ap-ga9-01",
        "room 101C: served by unknown access point 'ap-ga9-01'",
    ),
    "room_served_from_another_building": Fault(
        "rooms.csv",
        "ga,1,101C,conference_room,40,2,ap-ga1-01",
        "ga,1,101C,conference_room,40,2,ap-cb1-01",
        "room 101C of building 'ga' is served by ap-cb1-01, an access point of building 'cb'",
    ),
    "unknown_room_kind": Fault(
        "rooms.csv",
        "ga,1,102P,public_area,",
        "ga,1,102P,lobby,",
        "'kind' must be one of 'public_area', 'conference_room' or 'office'; got 'lobby'",
    ),
    "unknown_csv_column": Fault(
        "rooms.csv",
        "building,floor,room,",
        "building,level,room,",
        "unknown column 'level'; accepted columns: building, floor, room",
        line=1,
    ),
    "row_with_missing_cell": Fault(
        "rooms.csv",
        "ga,1,103C,conference_room,24,1,ap-ga1-02",
        "ga,1,103C,conference_room,24",
        "row has 5 cells, the header has 7",
    ),
    "site_without_owner_mission": Fault(
        "sites.csv",
        "www.ad.missions.example,AD,",
        "www.ad.missions.example,,",
        "'mission' is required and missing",
    ),
    "site_on_a_host_that_is_not_cms": Fault(
        "sites.csv",
        "www.ae.missions.example,AE,cms2",
        "www.ae.missions.example,AE,mail1",
        "www.ae.missions.example: host 'mail1' is not a cms host; known: cms1, cms2",
    ),
    "access_point_on_unknown_floor": Fault(
        "wifi.toml",
        "floor = 1\nmodel",
        "floor = 9\nmodel",
        "ap-ga1-01: floor 9 of building 'ga' is not in buildings.toml",
        # The [[access_point]] line of ap-ga1-01.
        line=13,
    ),
    "bad_zone": Fault(
        "site.toml",
        'zone = "ict.example"',
        'zone = "ict_example"',
        "'office.zone' must be a lower-case domain of two or more DNS labels separated by dots",
    ),
    "queue_lifetime_out_of_range": Fault(
        "mail.toml",
        "queue_lifetime_days = 5",
        "queue_lifetime_days = 30",
        "'queue_lifetime_days' input should be less than or equal to 14; got 30",
    ),
    "bad_backup_time": Fault(
        "backup.toml",
        'daily_at = "01:30"',
        'daily_at = "25:30"',
        "got '25:30'",
    ),
    "impossible_donation_date": Fault(
        "donations.csv",
        "D2008-00002,cpu,CPU-13BFCC66,UN-400002,PE,2008-01-01",
        "D2008-00002,cpu,CPU-13BFCC66,UN-400002,PE,2008-02-30",
        "'date' input should be a valid date",
    ),
    "unknown_donation_kind": Fault(
        "donations.csv",
        "D2008-00003,monitor,",
        "D2008-00003,laptop,",
        "'kind' must be one of 'cpu', 'monitor', 'printer' or 'other'; got 'laptop'",
    ),
    "clients_oid_not_numeric": Fault(
        "wifi.toml",
        '"generic-802.11ac" = "1.3.6.1.4.1.9.9.273.1.1.2.1.1"',
        '"generic-802.11ac" = "cDot11ActiveWirelessClients"',
        "must be a numeric SNMP object identifier",
        # The reader names the line of the [wifi.clients_oid] table the value belongs to.
        line=10,
    ),
    "clients_oid_for_a_model_no_access_point_has": Fault(
        "wifi.toml",
        '"generic-802.11ac" = "1.3.6',
        '"generic-802.11n" = "1.3.6',
        "[wifi.clients_oid] names model 'generic-802.11n', which no access point has; "
        "models in use: generic-802.11ac",
        line=None,
    ),
}


def _break(tmp_path: Path, *faults: Fault) -> Path:
    root = tmp_path / "estate"
    if not root.exists():
        shutil.copytree(DEFAULT_ROOT, root)
    for fault in faults:
        path = root / fault.file
        text = path.read_text(encoding="utf-8")
        assert fault.old in text, f"{fault.old!r} is no longer in {fault.file}; update the case"
        path.write_text(text.replace(fault.old, fault.new, 1), encoding="utf-8")
    return root


def _problems(root: Path) -> list[Problem]:
    with pytest.raises(EstateError) as caught:
        load_estate(root)
    return caught.value.problems


def _expected_line(fault: Fault) -> int | None:
    if fault.line != "old":
        return fault.line if isinstance(fault.line, int) else None
    text = (DEFAULT_ROOT / fault.file).read_text(encoding="utf-8")
    return text[: text.index(fault.old)].count("\n") + 1


def _matching(problems: list[Problem], root: Path, fault: Fault) -> list[Problem]:
    return [p for p in problems if p.file == root / fault.file and fault.says in p.message]


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_broken_estate_names_file_line_and_value(tmp_path: Path, case: str) -> None:
    """Each kind of fault is reported with its file, its line where it has one, and the value."""
    fault = FAULTS[case]
    root = _break(tmp_path, fault)

    problems = _problems(root)

    found = _matching(problems, root, fault)
    assert found, f"no problem says {fault.says!r}; got:\n" + "\n".join(map(str, problems))
    line = _expected_line(fault)
    if line is not None:
        assert [p.line for p in found] == [line], "\n".join(map(str, found))


def test_all_faults_are_reported_at_once(tmp_path: Path) -> None:
    """An estate with faults in five files reports every one of them, not only the first."""
    chosen = [
        FAULTS["unknown_key"],
        FAULTS["mailbox_on_unknown_server"],
        FAULTS["room_served_by_unknown_access_point"],
        FAULTS["site_without_owner_mission"],
        FAULTS["unknown_donation_kind"],
        FAULTS["queue_lifetime_out_of_range"],
    ]
    root = _break(tmp_path, *chosen)

    problems = _problems(root)

    for fault in chosen:
        assert _matching(problems, root, fault), f"missing: {fault.says}"


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A required estate file that is absent is named as missing."""
    root = _break(tmp_path)
    (root / "sites.csv").unlink()

    problems = _problems(root)

    assert [str(p) for p in problems] == [
        f"{root / 'sites.csv'}: file is missing; every estate file is required"
    ]


def test_estate_check_exits_1_without_a_traceback(tmp_path: Path) -> None:
    """`unops estate check` on a broken estate prints each problem with its place and exits 1."""
    fault = FAULTS["mailbox_on_unknown_server"]
    root = _break(tmp_path, fault)

    done = subprocess.run(
        [sys.executable, "-m", "unops", "estate", "check", "--estate", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert f"{root / 'mailboxes.csv'}:{_expected_line(fault)}: " in done.stderr
    assert "'mail9'" in done.stderr
    assert "nothing was changed" in done.stderr


def test_estate_check_prints_the_summary_of_a_valid_estate() -> None:
    """`unops estate check` on the sample estate exits 0 and shows its figures."""
    outcome = CliRunner().invoke(cli, ["estate", "check", "--json"])

    assert outcome.exit_code == 0
    assert '"mailboxes": 792' in outcome.output


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (
            Fault("hosts.toml", 'address = "203.0.113.11"', 'address = "203.0.113.311"', ""),
            "'address' input is not a valid IPv4 address; got '203.0.113.311'",
        ),
        (
            Fault("wifi.toml", "floor = 1\nmodel", 'floor = "one"\nmodel', ""),
            "'floor' input should be a valid integer",
        ),
        (
            Fault("missions.csv", "AF,Afghanistan,af.missions.example", "AF,Afghanistan,af", ""),
            "'mail_domain' must be a lower-case domain",
        ),
    ],
    ids=["mail_server_address", "access_point_floor", "mission_domain"],
)
def test_invalid_record_is_reported_once_not_again_by_each_reference(
    tmp_path: Path, fault: Fault, says: str
) -> None:
    """A bad mail server, access point or mission is one problem, not one per mailbox or room."""
    root = _break(tmp_path, fault)

    problems = _problems(root)

    assert len(problems) == 1, "\n".join(map(str, problems))
    assert says in problems[0].message
