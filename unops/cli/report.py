"""`unops report`: reports for auditors and operators, written as HTML, CSV or PDF."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, cast

import click

from unops.backup import client, plan, records
from unops.errors import BackupError
from unops.estate import load_estate
from unops.inventory import Fleet
from unops.reports import backups, render


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BackupError(f"{option} {value!r} is not a date; expected YYYY-MM-DD") from None


def _read_heads(path: Path | None) -> dict[str, dict[str, Any]] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BackupError(f"--previous-heads {path}: cannot read it as JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BackupError(
            f"--previous-heads {path}: expected {{host: {{seq, head}}}} as written by --save-heads"
        )
    return data


@click.group("report")
def command() -> None:
    """Reports built from the records the hosts keep."""


@command.command("backups")
@click.option("--from", "start", required=True, help="First day (YYYY-MM-DD, UTC), included.")
@click.option("--to", "end", required=True, help="Last day (YYYY-MM-DD, UTC), included.")
@click.option(
    "--format",
    "formats",
    default="html",
    show_default=True,
    help="Comma-separated formats to write: html, csv, pdf.",
)
@click.option(
    "--records",
    "records_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read <host>.jsonl files from this folder (`unops backup fetch`), not from the hosts.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to write the report files into.",
)
@click.option(
    "--previous-heads",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Chain heads an earlier report saved (--save-heads): records cut off since are found.",
)
@click.option(
    "--save-heads",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write each chain's last seq and head digest to this JSON file, for the next report.",
)
@click.option(
    "--inventory",
    type=click.Choice(["lab", "production"]),
    default="lab",
    show_default=True,
    help="Which fleet's hosts to read the records from (without --records).",
)
def backups_report(
    start: str,
    end: str,
    formats: str,
    records_dir: Path | None,
    out_dir: Path,
    previous_heads: Path | None,
    save_heads: Path | None,
    inventory: str,
) -> None:
    """Per host and day: backup status, snapshot, size, duration, verification and drill.

    Gaps and failures come first, in plain words; each host's record chain is verified. Prints
    each file written with its SHA-256 digest. Exits 1 when the report has any finding.
    """
    first, last = _date(start, "--from"), _date(end, "--to")
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in render.FORMATS]
    if unknown or not wanted:
        raise BackupError(
            f"--format {formats!r}: unknown {', '.join(unknown) or 'empty'}; "
            f"accepted: {', '.join(render.FORMATS)}"
        )
    hosts = plan.clients(load_estate(), inventory)
    if records_dir is not None:
        chains = records.read_folder(records_dir)
    else:
        chains = {host: client.fetch_records(host, cast(Fleet, inventory)) for host in hosts}
    report = backups.build(chains, hosts, first, last, _read_heads(previous_heads))

    out_dir.mkdir(parents=True, exist_ok=True)
    for fmt in wanted:
        data = render.render(report, fmt)
        path = out_dir / f"backups-{first}-{last}.{fmt}"
        path.write_bytes(data)
        click.echo(f"{path}  sha256 {render.digest(data)}")
    if save_heads is not None:
        save_heads.write_text(json.dumps(report.heads(), indent=2, sort_keys=True) + "\n")
        click.echo(f"{save_heads}  chain heads for the next report")
    state = "intact" if report.chains_intact else "BROKEN"
    click.echo(
        f"{len(report.hosts)} hosts, {len(report.days)} days: {report.gaps} gaps, "
        f"{report.failures} failed checks or drills; record chains {state}"
    )
    for finding in report.findings:
        click.secho(f"- {finding.text}", fg="red", err=True)
    if report.findings:
        raise SystemExit(1)
