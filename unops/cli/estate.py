"""`unops estate`: check the estate and show what it holds."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from unops.errors import EstateError
from unops.estate import DEFAULT_ROOT, load_estate


@click.group("estate")
def command() -> None:
    """The estate: missions, hosts, mailboxes, rooms, access points, sites, donations."""


@command.command("check")
@click.option(
    "--estate",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ROOT,
    show_default=True,
    help="Folder of the estate files to check.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary or the problems as JSON.")
def check(root: Path, as_json: bool) -> None:
    """Check every estate file and every reference between them.

    Prints every problem at once, each with its file, line, the bad value and what is accepted,
    and exits 1; or prints a summary of what the estate holds and exits 0.
    """
    try:
        estate = load_estate(root)
    except EstateError as exc:
        if as_json:
            problems = [
                {"file": str(p.file), "line": p.line, "message": p.message} for p in exc.problems
            ]
            click.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
        else:
            for problem in exc.problems:
                click.secho(str(problem), fg="red", err=True)
            click.secho(f"{len(exc.problems)} problem(s) in {root}; nothing was changed.", err=True)
        raise SystemExit(1) from None

    summary = estate.summary()
    if as_json:
        click.echo(json.dumps({"valid": True, "summary": summary}, indent=2))
        return
    table = Table(title=f"Estate in {root}: valid", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in summary.items():
        if isinstance(value, dict):
            for sub, count in value.items():
                table.add_row(f"{key.replace('_', ' ')}: {sub}", f"{count:,}")
        else:
            table.add_row(key.replace("_", " "), f"{value:,}")
    Console().print(table)
