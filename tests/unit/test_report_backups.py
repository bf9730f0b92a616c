"""The backup report from fabricated record sets: gaps, failures, tampering, escaping, formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from unops import chain
from unops.backup import records
from unops.cli import cli
from unops.errors import BackupError
from unops.reports import backups, render

START, END = dt.date(2026, 12, 1), dt.date(2026, 12, 5)


def _record(
    day: int, kind: str = "backup", result: str = "ok", **extra: object
) -> dict[str, object]:
    base: dict[str, object] = {
        "time": f"2026-12-{day:02d}T06:{30 + len(kind):02d}:00Z",
        "host": "mail1",
        "kind": kind,
        "result": result,
        "exit_code": 0 if result == "ok" else 1,
        "snapshot": f"{day:08x}" if kind == "backup" and result == "ok" else None,
        "bytes": 1_000_000 * day if kind == "backup" else None,
        "files": 100 * day if kind == "backup" else None,
        "duration_seconds": 10.0 + day,
        "detail": "3/7" if kind == "check" else "",
    }
    return {**base, **extra}


def _mail1_chain(tmp_path: Path) -> Path:
    """Day 1 ok with a drill, day 2 ok with a check, day 3 nothing, day 4 failed, day 5 ok."""
    path = tmp_path / "records" / "mail1.jsonl"
    for payload in (
        _record(1),
        _record(1, "forget"),
        _record(1, "drill", detail="412 messages identical in /var/vmail"),
        _record(2),
        _record(2, "check"),
        _record(4, result="failed", detail="Fatal: unable to open repository"),
        _record(5),
        _record(5, "check", result="failed", detail="3/7: pack 4f2a: Pack ID does not match"),
    ):
        chain.append(path, payload)
    return path


def _report(tmp_path: Path, hosts: list[str] | None = None) -> backups.BackupReport:
    chains = records.read_folder(tmp_path / "records")
    return backups.build(chains, hosts or ["mail1"], START, END)


def _row(report: backups.BackupReport, host: str, day: int) -> backups.DayRow:
    return next(r for r in report.rows if r.host == host and r.day.day == day)


def test_missing_day_is_a_gap(tmp_path: Path) -> None:
    """A day without any backup record is a gap, said in plain words, for the ops engineer."""
    _mail1_chain(tmp_path)
    report = _report(tmp_path)
    row = _row(report, "mail1", 3)
    assert row.status == "gap"
    assert [f.text for f in row.findings] == [
        "mail1 on 2026-12-03: expected a successful daily backup; no backup ran (check "
        "unops-backup.timer and the host's clock). ops engineer acts."
    ]


def test_failed_backup_day_is_a_gap_with_its_error(tmp_path: Path) -> None:
    """A day whose only backup failed is a gap that quotes the error and the exit code."""
    _mail1_chain(tmp_path)
    row = _row(_report(tmp_path), "mail1", 4)
    assert row.status == "failed"
    assert row.findings[0].kind == "gap"
    assert "exit code 1: Fatal: unable to open repository" in row.findings[0].text


def test_good_days_carry_snapshot_size_duration_check_and_drill(tmp_path: Path) -> None:
    """A good day shows its snapshot, data added, duration, and that day's check and drill."""
    _mail1_chain(tmp_path)
    report = _report(tmp_path)
    day1, day2 = _row(report, "mail1", 1), _row(report, "mail1", 2)
    assert (day1.status, day1.snapshot, day1.bytes, day1.duration_seconds) == (
        "ok",
        "00000001",
        1_000_000,
        11.0,
    )
    assert (day1.drill, day1.drill_detail) == ("ok", "412 messages identical in /var/vmail")
    assert (day2.check, day2.check_detail) == ("ok", "3/7")
    assert not day1.findings and not day2.findings


def test_failed_verification_is_a_finding(tmp_path: Path) -> None:
    """A failed check is reported with what it read and what restic found."""
    _mail1_chain(tmp_path)
    report = _report(tmp_path)
    failures = [f for f in report.findings if f.kind == "failure"]
    assert len(failures) == 1
    assert failures[0].day == dt.date(2026, 12, 5)
    assert "verification failed (exit code 1): 3/7: pack 4f2a" in failures[0].text
    assert report.failures == 1 and report.gaps == 2


def test_edited_record_makes_the_report_say_so(tmp_path: Path) -> None:
    """A failed backup rewritten as ok breaks the chain; the report says so, for the auditor."""
    path = _mail1_chain(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    edited = json.loads(lines[5])
    edited.update(result="ok", exit_code=0, snapshot="0000000d", detail="")
    lines[5] = chain.canonical(edited)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _report(tmp_path)
    assert not report.chains_intact
    first = report.findings[0]
    assert (first.kind, first.who) == ("chain", backups.AUDITOR)
    assert "line 7 (seq 7): prev does not match" in first.text
    html = render.to_html(report).decode("utf-8")
    assert "record chains BROKEN" in html and "line 7 (seq 7)" in html


def test_deleted_record_makes_the_report_say_so(tmp_path: Path) -> None:
    """The failed day's record deleted: the chain reports the removal, the day is still a gap."""
    path = _mail1_chain(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    del lines[5]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _report(tmp_path)
    chain_findings = [f.text for f in report.findings if f.kind == "chain"]
    assert any("seq is 7, expected 6; records were removed" in t for t in chain_findings)
    assert _row(report, "mail1", 4).status == "gap"


def test_host_without_records_has_a_gap_every_day(tmp_path: Path) -> None:
    """An expected host with no records at all shows a gap on every day of the period."""
    _mail1_chain(tmp_path)
    report = _report(tmp_path, ["mail1", "mail2"])
    mail2 = [r for r in report.rows if r.host == "mail2"]
    assert [r.status for r in mail2] == ["gap"] * 5
    assert report.hosts == ["mail1", "mail2"]


def test_findings_come_first_then_a_stable_order(tmp_path: Path) -> None:
    """Rows needing action come first, by host and day; then the good rows, by host and day."""
    _mail1_chain(tmp_path)
    report = _report(tmp_path)
    assert [(r.day.day, r.needs_action) for r in report.rows] == [
        (3, True),
        (4, True),
        (5, True),
        (1, False),
        (2, False),
    ]


def test_csv_escapes_cells_a_spreadsheet_would_run(tmp_path: Path) -> None:
    """Detail text starting with =, +, - or @ is written with a leading ' so it stays text."""
    path = tmp_path / "records" / "mail1.jsonl"
    chain.append(path, _record(1, result="failed", detail='=HYPERLINK("http://x","y")'))
    chain.append(path, _record(1, "check", detail="@SUM(A1:A9)"))
    chain.append(path, _record(1, "drill", detail="+cmd|' /C calc'!A0"))
    chain.append(path, _record(2, "check", detail="-2+3"))
    report = _report(tmp_path)
    rows = list(csv.DictReader(io.StringIO(render.to_csv(report).decode("utf-8"))))
    day1 = next(r for r in rows if r["day"] == "2026-12-01")
    day2 = next(r for r in rows if r["day"] == "2026-12-02")
    assert day1["verification_detail"] == "'@SUM(A1:A9)"
    assert day1["drill_detail"] == "'+cmd|' /C calc'!A0"
    assert day2["verification_detail"] == "'-2+3"
    assert "=HYPERLINK" in day1["findings"] and not day1["findings"].startswith("=")
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_csv_cell_leaves_numbers_and_plain_text_alone() -> None:
    """Numbers stay numbers and ordinary text is unchanged; only formula starts are escaped."""
    assert render.csv_cell(-9) == -9
    assert render.csv_cell(1.5) == 1.5
    assert render.csv_cell("mail1") == "mail1"
    assert render.csv_cell(None) == ""
    assert render.csv_cell("\t=1") == "'\t=1"


def test_same_records_give_identical_reports(tmp_path: Path) -> None:
    """Two reports of the same records are byte-identical in HTML and CSV: digests compare."""
    _mail1_chain(tmp_path)
    first, second = _report(tmp_path), _report(tmp_path)
    for fmt in ("html", "csv"):
        assert render.digest(render.render(first, fmt)) == render.digest(render.render(second, fmt))


def test_html_holds_the_chart_heads_and_findings(tmp_path: Path) -> None:
    """The HTML has the chart (SVG of both hosts), each chain's head and every finding."""
    path = _mail1_chain(tmp_path)
    report = _report(tmp_path, ["mail1", "mail2"])
    svg = render.chart_svg(report)
    assert svg.lstrip().startswith("<?xml") and "mail1" in svg and "mail2" in svg
    assert "data added (MiB)" in svg and "duration (s)" in svg
    html = render.to_html(report).decode("utf-8")
    assert records.read_file(path).head in html
    assert "data:image/svg+xml;base64," in html
    assert html.count("<li>") == len(report.findings)


def test_pdf_is_written(tmp_path: Path) -> None:
    """The PDF is a real PDF document made from the HTML report."""
    _mail1_chain(tmp_path)
    pdf = render.to_pdf(_report(tmp_path))
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-1024:]
    assert len(pdf) > 5000


def test_reversed_or_overlong_period_is_refused() -> None:
    """A period that ends before it starts, or spans more than a year, is refused with the fix."""
    with pytest.raises(BackupError, match="--to 2026-11-30 is before --from 2026-12-01"):
        backups.build({}, ["mail1"], START, dt.date(2026, 11, 30))
    with pytest.raises(BackupError, match="longer than 366 days"):
        backups.build({}, ["mail1"], dt.date(2025, 1, 1), END)


def test_cli_writes_each_format_and_prints_its_digest(tmp_path: Path) -> None:
    """`unops report backups --records` writes html, csv and pdf and prints each file's SHA-256."""
    _mail1_chain(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "backups",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-05",
            "--records",
            str(tmp_path / "records"),
            "--format",
            "html,csv,pdf",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1, result.output  # the fabricated set has gaps and a failure
    for fmt in ("html", "csv", "pdf"):
        path = out / f"backups-2026-12-01-2026-12-05.{fmt}"
        assert f"{path}  sha256 {render.digest(path.read_bytes())}" in result.output


def test_cli_refuses_an_unknown_format(tmp_path: Path) -> None:
    """An unknown format is refused before anything is read, naming the accepted ones."""
    result = CliRunner().invoke(
        cli, ["report", "backups", "--from", "2026-12-01", "--to", "2026-12-05", "--format", "xls"]
    )
    assert result.exit_code != 0
    assert "accepted: html, csv, pdf" in str(result.exception) + result.output


def _week(tmp_path: Path, shares: list[int]) -> backups.BackupReport:
    """Monday 2026-11-30 to Sunday 2026-12-06: a good backup daily, a check on share n of 7."""
    path = tmp_path / "records" / "mail1.jsonl"
    for n in range(7):
        date = dt.date(2026, 11, 30) + dt.timedelta(days=n)
        stamp = f"{date.isoformat()}T06:30:00Z"
        chain.append(path, _record(1, time=stamp))
        if n < len(shares):
            chain.append(path, _record(1, "check", time=stamp, detail=f"{shares[n]}/7"))
    chains = records.read_folder(tmp_path / "records")
    return backups.build(chains, ["mail1"], dt.date(2026, 11, 30), dt.date(2026, 12, 6))


def test_week_whose_checks_read_every_share_has_no_finding(tmp_path: Path) -> None:
    """Seven passing checks reading shares 1 to 7 in one week: all data was read, nothing to do."""
    report = _week(tmp_path, [1, 2, 3, 4, 5, 6, 7])
    assert report.findings == []


def test_week_that_left_a_share_unread_is_a_finding(tmp_path: Path) -> None:
    """A week whose checks never read share 7 says which shares were read and who acts."""
    report = _week(tmp_path, [1, 2, 3, 4, 5, 6, 6])
    assert [f.text for f in report.findings] == [
        "mail1 on 2026-11-30: expected verification reading all the data in the week from this "
        "Monday; the passing checks read only shares [1, 2, 3, 4, 5, 6] of 7; part of the data "
        "went unread (check unops-backup-check.timer). ops engineer acts."
    ]


def test_records_cut_off_the_end_are_found_with_the_previous_heads(tmp_path: Path) -> None:
    """Records cut off the end leave a consistent chain; the previous report's heads show it."""
    path = _mail1_chain(tmp_path)
    heads = _report(tmp_path).heads()
    assert heads["mail1"]["seq"] == 8
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    chains = records.read_folder(tmp_path / "records")
    assert chains["mail1"].intact  # on its own, the shorter chain looks consistent
    report = backups.build(chains, ["mail1"], START, END, heads)
    assert not report.chains_intact
    assert "the chain now ends at seq 6; records were removed from its end" in (
        report.findings[0].text
    )
    assert backups.build(
        records.read_folder(tmp_path / "records"), ["mail1"], START, END, _report(tmp_path).heads()
    ).chains_intact


def test_cli_saves_heads_and_the_next_report_checks_them(tmp_path: Path) -> None:
    """--save-heads then --previous-heads: an untouched chain passes, a truncated one is named."""
    path = _mail1_chain(tmp_path)
    heads = tmp_path / "heads.json"
    base = [
        "report",
        "backups",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-05",
        "--format",
        "csv",
        "--records",
        str(tmp_path / "records"),
        "--out",
        str(tmp_path / "out"),
    ]
    first = CliRunner().invoke(cli, [*base, "--save-heads", str(heads)])
    assert json.loads(heads.read_text())["mail1"]["seq"] == 8, first.output
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    second = CliRunner().invoke(cli, [*base, "--previous-heads", str(heads)])
    assert "record chains BROKEN" in second.output
    assert "earlier report saw record seq 8" in second.output
