"""Write a backup report as HTML (jinja2), CSV (formula cells escaped) or PDF (weasyprint).

Every format is made from the same display values, computed here, so the HTML template only
places them. The chart of sizes and durations is an SVG made by matplotlib, embedded in the
HTML and the PDF. Output is deterministic for the same records (no time stamps, fixed SVG ids),
so an auditor can regenerate a report and compare its digest.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
from typing import Any

import jinja2

from unops.reports.backups import BackupReport, DayRow

log = logging.getLogger(__name__)

FORMATS = ("html", "csv", "pdf")
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("unops.reports", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
CSV_COLUMNS = (
    "host",
    "day",
    "status",
    "snapshot",
    "bytes_added",
    "files",
    "duration_seconds",
    "backup_runs",
    "verification",
    "verification_detail",
    "drill",
    "drill_detail",
    "findings",
)


def digest(data: bytes) -> str:
    """The SHA-256 of a written report, as printed beside it."""
    return hashlib.sha256(data).hexdigest()


def csv_cell(value: object) -> str | int | float:
    """A value as a CSV cell; text a spreadsheet would run as a formula is prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _row_values(row: DayRow) -> list[object]:
    return [
        row.host,
        row.day.isoformat(),
        row.status,
        row.snapshot,
        row.bytes,
        row.files,
        row.duration_seconds,
        row.backups,
        row.check,
        row.check_detail,
        row.drill,
        row.drill_detail,
        " | ".join(f.text for f in row.findings),
    ]


def to_csv(report: BackupReport) -> bytes:
    """One line per host and day, those that need action first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        writer.writerow([csv_cell(value) for value in _row_values(row)])
    return out.getvalue().encode("utf-8")


def chart_svg(report: BackupReport) -> str:
    """Data added and duration of each host's daily backup over the period, as SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    # Fixed ids and no date: the same report gives the same bytes.
    matplotlib.rcParams["svg.hashsalt"] = "unops-backup-report"
    matplotlib.rcParams["svg.fonttype"] = "none"
    days = report.days
    figure, (sizes, durations) = pyplot.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for host in report.hosts:
        rows = {r.day: r for r in report.rows if r.host == host}
        mib = [
            (rows[d].bytes or 0) / 2**20 if rows[d].status == "ok" else float("nan") for d in days
        ]
        secs = [
            rows[d].duration_seconds if rows[d].duration_seconds is not None else float("nan")
            for d in days
        ]
        sizes.plot(days, mib, marker="o", markersize=3, label=host)
        durations.plot(days, secs, marker="o", markersize=3, label=host)
    sizes.set_ylabel("data added (MiB)")
    durations.set_ylabel("duration (s)")
    sizes.set_title(f"Daily backups {report.start} to {report.end}")
    sizes.legend(loc="upper left", fontsize="small", ncol=4)
    sizes.grid(alpha=0.3)
    durations.grid(alpha=0.3)
    figure.autofmt_xdate()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    pyplot.close(figure)
    return buffer.getvalue()


def _size(value: int | None) -> str:
    if value is None:
        return ""
    if value < 1024:
        return f"{value} B"
    scaled = float(value)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def _context(report: BackupReport) -> dict[str, Any]:
    svg = chart_svg(report).encode("utf-8")
    return {
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "hosts": len(report.hosts),
        "days": len(report.days),
        "gaps": report.gaps,
        "failures": report.failures,
        "chains_state": "intact" if report.chains_intact else "BROKEN",
        "findings": [f.text for f in report.findings],
        "chains": [
            {
                "host": c.host,
                "records": c.records,
                "state": "intact" if c.intact else f"broken ({len(c.problems)} problems)",
                "head": c.head,
            }
            for c in report.chains
        ],
        "rows": [
            {
                "css": "ok" if not r.needs_action else "bad",
                "host": r.host,
                "day": r.day.isoformat(),
                "status": r.status,
                "snapshot": r.snapshot or "",
                "size": _size(r.bytes),
                "duration": "" if r.duration_seconds is None else f"{r.duration_seconds:.1f} s",
                "check": r.check if not r.check_detail else f"{r.check} ({r.check_detail})",
                "drill": r.drill if not r.drill_detail else f"{r.drill} ({r.drill_detail})",
            }
            for r in report.rows
        ],
        "chart": "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii"),
    }


def to_html(report: BackupReport) -> bytes:
    return TEMPLATES.get_template("backups.html.j2").render(_context(report)).encode("utf-8")


def to_pdf(report: BackupReport) -> bytes:
    """The HTML report laid out as PDF pages by weasyprint."""
    from weasyprint import HTML  # type: ignore[import-untyped]

    pdf = HTML(string=to_html(report).decode("utf-8")).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf


def render(report: BackupReport, fmt: str) -> bytes:
    writers = {"html": to_html, "csv": to_csv, "pdf": to_pdf}
    if fmt not in writers:
        from unops.errors import BackupError

        raise BackupError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    log.info("writing the backup report as %s", fmt)
    return writers[fmt](report)
