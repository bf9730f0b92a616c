"""`unops backup`: the state of every host's backups, restores, and restore drills."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import click

from unops.backup import client, plan, records
from unops.backup.records import BackupRecord
from unops.estate import load_estate
from unops.inventory import Fleet

_INVENTORY = click.option(
    "--inventory",
    type=click.Choice(["lab", "production"]),
    default="lab",
    show_default=True,
    help="Which fleet the host is in.",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


def _record_dict(record: BackupRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    data = dataclasses.asdict(record)
    data["time"] = record.time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return data


def _describe(record: BackupRecord | None) -> str:
    if record is None:
        return "none recorded"
    size = f", {record.bytes} bytes" if record.bytes is not None else ""
    snap = f" snapshot {record.snapshot}" if record.snapshot else ""
    return (
        f"{record.result} at {record.time:%Y-%m-%d %H:%M}Z{snap}{size}, "
        f"{record.duration_seconds:.1f} s; {record.detail}"
    )


def _show_record(record: BackupRecord, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_record_dict(record), indent=2))
    else:
        colour = "green" if record.ok else "red"
        click.secho(f"{record.host} {record.kind}: {_describe(record)}", fg=colour)
    if not record.ok:
        raise SystemExit(1)


@click.group("backup")
def command() -> None:
    """Daily encrypted backups (restic) of the mail, directory and CMS hosts to the backup host."""


@command.command("status")
@click.argument("hosts", nargs=-1)
@_INVENTORY
@_JSON
def status(hosts: tuple[str, ...], inventory: str, as_json: bool) -> None:
    """Each backed-up host (or the HOSTS named): last backup, verification, drill, chain.

    Exits 1 when any host has a finding: a broken record chain, no good backup within a day,
    or a failed backup, verification or drill.
    """
    found = client.status(list(hosts) or None, cast(Fleet, inventory))
    if as_json:
        data = [
            {
                "host": s.host,
                "ok": s.ok,
                "chain_intact": s.chain.intact,
                "chain_head": s.chain.head,
                "records": len(s.chain.records),
                "last_backup": _record_dict(s.last_backup),
                "last_good_backup": _record_dict(s.last_good_backup),
                "last_check": _record_dict(s.last_check),
                "last_drill": _record_dict(s.last_drill),
                "findings": s.findings,
            }
            for s in found
        ]
        click.echo(json.dumps(data, indent=2))
    else:
        for s in found:
            click.secho(
                f"{s.host}: {'ok' if s.ok else 'NEEDS ACTION'}",
                bold=True,
                fg="green" if s.ok else "red",
            )
            click.echo(f"  backup:  {_describe(s.last_backup)}")
            click.echo(f"  check:   {_describe(s.last_check)}")
            click.echo(f"  drill:   {_describe(s.last_drill)}")
            state = "intact" if s.chain.intact else "BROKEN"
            click.echo(f"  records: {len(s.chain.records)}, chain {state}, head {s.chain.head}")
            for finding in s.findings:
                click.secho(f"  - {finding}", fg="red")
    if not all(s.ok for s in found):
        raise SystemExit(1)


@command.command("run")
@click.argument("host")
@click.option(
    "--action",
    type=click.Choice(["daily", "backup", "forget", "check"]),
    default="daily",
    show_default=True,
    help="daily: backup then forget --prune, as the timer does; check: verify today's share.",
)
@_INVENTORY
@_JSON
def run_now(host: str, action: str, inventory: str, as_json: bool) -> None:
    """Run HOST's backup (or verification) now, as its timer would, and show its record."""
    _show_record(client.run_now(host, action, cast(Fleet, inventory)), as_json)


@command.command("restore")
@click.argument("host")
@click.option("--path", "path", required=True, help="What to restore, as it was backed up.")
@click.option("--to", "target", required=True, help="An empty folder on HOST to restore into.")
@click.option("--snapshot", default="latest", show_default=True, help="The snapshot to read.")
@click.option(
    "--in-place",
    is_flag=True,
    help="Allow a target that is or overlaps live data (overwrites it). Never the default.",
)
@_INVENTORY
@_JSON
def restore(
    host: str, path: str, target: str, snapshot: str, in_place: bool, inventory: str, as_json: bool
) -> None:
    """Restore PATH from a snapshot of HOST into the folder --to on HOST; the run is recorded.

    A target that overlaps the backed-up data, or that is not empty, is refused unless
    --in-place is given.
    """
    record = client.restore(
        host, path, target, snapshot=snapshot, in_place=in_place, fleet=cast(Fleet, inventory)
    )
    _show_record(record, as_json)


@command.command("drill")
@click.argument("host")
@_INVENTORY
@_JSON
def drill(host: str, inventory: str, as_json: bool) -> None:
    """Restore HOST's latest snapshot to scratch and compare it with the source; record it.

    Mailboxes must hold the same messages byte for byte, the directory the same entries, and
    database dumps the same checksums. Exits 1 when they do not.
    """
    _show_record(client.drill(host, cast(Fleet, inventory)), as_json)


@command.command("fetch")
@click.option(
    "--to",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write <host>.jsonl into (for `unops report backups --records`).",
)
@_INVENTORY
def fetch(folder: Path, inventory: str) -> None:
    """Copy every backed-up host's record chain, as it is, into a local folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for host in plan.clients(load_estate(), inventory):
        text = client.raw_records(host, cast(Fleet, inventory))
        (folder / f"{host}.jsonl").write_text(text, encoding="utf-8")
        chain = records.parse_lines(host, text.splitlines())
        state = "intact" if chain.intact else f"{len(chain.problems)} problems"
        click.echo(f"{host}: {len(chain.records)} records, chain {state}")
