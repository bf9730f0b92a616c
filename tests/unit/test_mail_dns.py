"""The DNS records of a mission domain, and the lab's copy of them."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from unops import secrets
from unops.cli import cli
from unops.errors import UnopsError
from unops.estate import load_estate
from unops.mail import dkim, dns


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(secrets, "SECRETS_DIR", tmp_path / "secrets")
    return tmp_path / "secrets"


def by_name(records: list[dns.DnsRecord]) -> dict[str, str]:
    return {record.name: record.value for record in records}


def test_records_cover_spf_dkim_dmarc_mta_sts_and_tls_rpt() -> None:
    """A mission domain gets each of the five records, named as receivers look them up."""
    records = by_name(dns.records(load_estate(), "lab", "no.missions.example"))
    assert records["no.missions.example"].startswith("v=spf1 a:mail1.ict.example")
    assert records["no.missions.example"].endswith(" -all")
    assert records["unops1._domainkey.no.missions.example"].startswith("v=DKIM1; k=rsa; p=")
    assert records["_dmarc.no.missions.example"].startswith("v=DMARC1; p=reject")
    assert records["_mta-sts.no.missions.example"].startswith("v=STSv1; id=")
    assert records["_smtp._tls.no.missions.example"].startswith("v=TLSRPTv1; rua=mailto:")
    assert records["no.missions.example._report._dmarc.ict.example"] == "v=DMARC1"


def test_dkim_key_is_generated_once_with_mode_0600(secrets_dir: Path) -> None:
    """The DKIM key is made on first use, kept readable by root only and reused after."""
    first = dkim.public_key_record("lab", "no.missions.example")
    path = secrets_dir / "lab" / "dkim" / "no.missions.example"
    assert path.stat().st_mode & 0o777 == 0o600
    assert dkim.public_key_record("lab", "no.missions.example") == first
    assert "PRIVATE KEY" in path.read_text()


def test_rejects_a_domain_that_is_not_a_mission_domain() -> None:
    """An unknown domain is refused with the file it should be in and examples of good ones."""
    expected = r"'gmail\.example' is not a mail domain.*ict\.example.*such as"
    with pytest.raises(UnopsError, match=expected):
        dns.records(load_estate(), "lab", "gmail.example")


def test_mta_sts_policy_lists_every_mail_server_in_enforce_mode() -> None:
    """The MTA-STS policy enforces TLS to exactly the four mail servers."""
    policy = dns.mta_sts_policy(load_estate()).split("\r\n")
    assert policy[:2] == ["version: STSv1", "mode: enforce"]
    assert [line for line in policy if line.startswith("mx:")] == [
        f"mx: mail{n}.ict.example" for n in range(1, 5)
    ]


def test_cli_prints_long_dkim_values_as_255_byte_strings() -> None:
    """`unops mail dns` prints zone-file lines whose quoted strings fit TXT's 255-byte limit."""
    result = CliRunner().invoke(cli, ["mail", "dns", "no.missions.example", "--fleet", "lab"])
    assert result.exit_code == 0, result.output
    dkim_line = next(line for line in result.output.splitlines() if "_domainkey" in line)
    strings = dkim_line.split(" TXT ", 1)[1].split('" "')
    assert len(strings) >= 2
    assert all(len(s.strip('"')) <= 255 for s in strings)


def test_cli_json_lists_the_records_and_the_policy() -> None:
    """`--json` gives the records and the MTA-STS policy for scripts."""
    result = CliRunner().invoke(cli, ["mail", "dns", "no.missions.example", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {r["type"] for r in data["records"]} == {"TXT"}
    assert "mode: enforce" in data["mta_sts_policy"]


def test_lab_records_are_rewritten_only_when_they_change(tmp_path: Path) -> None:
    """Publishing the same records twice leaves the lab resolver's file untouched."""
    estate = load_estate()
    path, changed = dns.write_lab_records(estate, tmp_path)
    assert changed
    entries = json.loads(path.read_text())
    # Six records for each mission domain; the office zone is its own DMARC report domain, so
    # it needs no report authorisation record.
    assert len(entries) == 6 * len(estate.mission_mail_domains) + 5
    assert estate.zone in {entry["name"] for entry in entries}
    assert set(entries[0]) == {"name", "type", "value", "ttl"}
    assert dns.write_lab_records(estate, tmp_path) == (path, False)


def test_key_bundle_is_the_same_bytes_for_the_same_keys() -> None:
    """The DKIM key archive only changes when a key does, so a second deploy copies nothing."""
    domains = ["no.missions.example", "af.missions.example"]
    first = dkim.key_bundle("lab", domains)
    assert dkim.key_bundle("lab", list(reversed(domains))) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == [
        "af.missions.example.unops1.key",
        "no.missions.example.unops1.key",
    ]
    assert all(m.mode == 0o600 for m in members)
