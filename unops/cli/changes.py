"""`unops changes`: what the deploys changed, where and by whom, and whether the log is intact."""

from __future__ import annotations

import json
from typing import Any

import click

from unops import changelog


def _print_run(run: dict[str, Any]) -> None:
    who = run.get("who") or {}
    user = who.get("user") or "?"
    if who.get("sudo_user"):
        user = f"{who['sudo_user']} (as {user})"
    checkout = run.get("checkout") or {}
    commit = (checkout.get("commit") or "unknown")[:12]
    if checkout.get("dirty"):
        commit += "+dirty"
    services = ", ".join(run.get("services") or []) or "-"
    if run.get("limit"):
        services += f" (limited to {', '.join(run['limit'])})"
    kind = "dry run" if run.get("dry") else "run"
    click.echo(
        f"{kind} {run.get('seq')} at {run.get('started')} by {user}: {services} on "
        f"{run.get('inventory')} (commit {commit}): {run.get('changed', 0)} changed"
    )
    if run.get("error"):
        click.secho(f"  did not run: {run['error']}", fg="red")
    verb = "would change" if run.get("dry") else "changed"
    for host, data in sorted((run.get("hosts") or {}).items()):
        if data.get("error"):
            click.secho(f"  {host}: failed: {data['error']}", fg="red")
        operations = data.get("operations") or []
        touched = [op for op in operations if op.get("changed") or not op.get("success")]
        if not touched and not data.get("error"):
            click.echo(f"  {host}: no change ({len(operations)} operations)")
        for op in touched:
            mark = verb if op.get("success") else "failed"
            click.echo(f"  {host}: {mark}: {op.get('name')}")


@click.command("changes")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only runs started since then: 30m, 24h, 7d, 2w, or a date/time (2026-12-01T18:00).",
)
@click.option("--host", metavar="HOST", help="Only runs on this host, and only its operations.")
@click.option(
    "--fleet",
    type=click.Choice(["lab", "production"]),
    help="Only this fleet's log (default: every log in the change log folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs and chain status as JSON.")
def command(since: str | None, host: str | None, fleet: str | None, as_json: bool) -> None:
    """Show the deploy runs, oldest first, and check that no record was edited or removed.

    Reads /var/lib/unops/changes/<fleet>.jsonl (or $UNOPS_CHANGELOG_DIR). Exits 1 if a chain is
    broken, listing where.
    """
    moment = changelog.parse_since(since) if since else None
    fleets = [fleet] if fleet else changelog.fleets_present()
    logs = [changelog.read(name, since=moment, host=host) for name in fleets]

    if as_json:
        payload = [
            {
                "fleet": log.fleet,
                "path": str(log.path),
                "intact": log.intact,
                "problems": log.problems,
                "records": log.total,
                "head": log.head,
                "runs": log.runs,
            }
            for log in logs
        ]
        click.echo(json.dumps(payload, indent=2))
    else:
        if not logs:
            click.echo(f"no change log yet in {changelog.changelog_dir()}")
        for log in logs:
            click.secho(f"{log.fleet}: {log.path}", bold=True)
            for run in log.runs:
                _print_run(run)
            if not log.runs:
                click.echo("  no run matches")
            if log.intact:
                click.secho(f"chain intact: {log.total} records, head {log.head[:16]}", fg="green")
            else:
                click.secho(f"chain BROKEN ({len(log.problems)} problems):", fg="red")
                for problem in log.problems:
                    click.secho(f"  {problem}", fg="red")
    if any(not log.intact for log in logs):
        raise SystemExit(1)
