"""`unops report backups` on the lab's real records: read from the hosts, tampering shown."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from backup_support import deploy_backup
from click.testing import CliRunner

from unops.backup import client, plan
from unops.cli import cli
from unops.remote import run
from unops.reports import backups, render

pytestmark = pytest.mark.lab

HOST = "mail1"


@pytest.fixture(scope="module")
def backed_up(lab: object) -> str:
    """mail1 deployed and backed up now: today has a successful backup record."""
    deploy_backup(["backup1", HOST])
    record = client.run_now(HOST, "backup")
    assert record.ok, record.detail
    return record.snapshot or ""


def test_report_reads_the_hosts_real_records(backed_up: str, tmp_path: Path) -> None:
    """The report from the hosts shows today's mail1 backup with its snapshot, the day before
    its first record as a gap, and prints digests that match the files written."""
    today = dt.datetime.now(dt.UTC).date()
    # The day before mail1's first record: certainly a day without a backup.
    yesterday = min(r.day for r in client.fetch_records(HOST).records) - dt.timedelta(days=1)
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "backups",
            "--from",
            str(yesterday),
            "--to",
            str(today),
            "--format",
            "csv,html",
            "--out",
            str(tmp_path),
            "--inventory",
            "lab",
        ],
    )
    csv_path = tmp_path / f"backups-{yesterday}-{today}.csv"
    assert csv_path.is_file(), result.output
    for path in (csv_path, csv_path.with_suffix(".html")):
        assert f"{path}  sha256 {render.digest(path.read_bytes())}" in result.output
    rows = {
        (r["host"], r["day"]): r
        for r in csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8")))
    }
    assert rows[(HOST, str(today))]["status"] == "ok"
    assert rows[(HOST, str(today))]["snapshot"] == backed_up
    assert rows[(HOST, str(yesterday))]["status"] == "gap"
    assert "no backup ran" in rows[(HOST, str(yesterday))]["findings"]


def test_report_says_when_a_real_record_was_edited(backed_up: str) -> None:
    """A record edited in mail1's chain on the host makes the report name the broken link."""
    records_file = plan.RECORDS_FILE
    saved = f"{records_file}.test-copy"
    run(HOST, ["cp", "-p", "--", records_file, saved], check=True)
    edit = (
        "import json,sys; p=sys.argv[1]; lines=open(p).read().splitlines(); "
        "r=json.loads(lines[0]); r['bytes']=(r['bytes'] or 0)+1; "
        "lines[0]=json.dumps(r,sort_keys=True,separators=(',',':'),ensure_ascii=False); "
        "open(p,'w').write('\\n'.join(lines)+'\\n')"
    )
    try:
        run(HOST, ["python3", "-c", edit, records_file], check=True)
        chain = client.fetch_records(HOST)
    finally:
        run(HOST, ["mv", "--", saved, records_file], check=True)
    today = dt.datetime.now(dt.UTC).date()
    report = backups.build({HOST: chain}, [HOST], today, today)
    assert not report.chains_intact
    texts = [f.text for f in report.findings if f.kind == "chain"]
    assert texts and "line 2 (seq 2): prev does not match" in texts[0], texts
    assert client.fetch_records(HOST).intact
