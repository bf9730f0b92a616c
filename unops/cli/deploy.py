"""`unops deploy`: validate the estate, converge one service or all in order, record the run."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from unops import changelog, services
from unops.deploying import DeployEvent, DeployResult, run_deploy
from unops.errors import DeployError


class _Progress:
    """One line per host and step, as pyinfra reports them."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: DeployEvent) -> None:
        if event.kind == "loading":
            self.console.print(f"[bold]planning[/] {event.file}")
        elif event.kind == "connected":
            self.console.print(f"[cyan]{event.host}[/] connected")
        elif event.kind == "connect_failed":
            self.console.print(f"[cyan]{event.host}[/] [red]cannot connect:[/] {event.error}")
        elif event.kind == "operation":
            if not event.success:
                status = "[red]failed[/]"
            elif event.changed:
                status = "[yellow]changed[/]"
            else:
                status = "[green]no change[/]"
            self.console.print(f"[cyan]{event.host}[/] {status} {event.operation}", highlight=False)
        elif event.kind == "planned":
            self.console.print("[bold]dry run:[/] nothing was executed")


def _summary(console: Console, result: DeployResult) -> None:
    verb = "would change" if result.dry else "changed"
    table = Table(title=f"{'Dry run' if result.dry else 'Run'} on {result.inventory}")
    table.add_column("host", style="cyan")
    table.add_column(verb, justify="right")
    table.add_column("unchanged", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("error")
    for name, host in result.hosts.items():
        table.add_row(
            name, str(host.changed), str(host.unchanged), str(host.failed), host.error or ""
        )
    console.print(table)
    for name, host in result.hosts.items():
        for op in host.operations:
            if op.changed or not op.success:
                mark = "failed" if not op.success else verb
                console.print(f"  {name}: {mark}: {op.name}", highlight=False)
                if op.error:
                    console.print(f"    {op.error}", highlight=False, markup=False)
            elif op.conditional:
                console.print(f"  {name}: may change (conditional): {op.name}", highlight=False)


@click.command("deploy")
@click.argument("service", required=False)
@click.option(
    "-i",
    "--inventory",
    required=True,
    help="Which hosts: 'lab' (the rehearsal fleet), 'production', or a pyinfra inventory file.",
)
@click.option("--dry", is_flag=True, help="Show what would change on each host; execute nothing.")
@click.option(
    "--limit",
    multiple=True,
    metavar="HOST",
    help="Run only on this host or group (a name or a pattern such as 'mx*'); repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, no progress.")
def command(
    service: str | None, inventory: str, dry: bool, limit: tuple[str, ...], as_json: bool
) -> None:
    """Converge SERVICE (deploys/SERVICE.py, or a deploy file), or every service in order.

    The whole estate is validated first: a problem stops the run before any host is contacted.
    Progress is shown per host, then what changed where; every run is appended to the change
    log (`unops changes`). Exits 1 if any host failed.
    """
    if service is None:
        names = services.available()
        files = services.deploy_files()
        if not files:
            raise DeployError(f"no service has a deploy file yet in {services.DEPLOYS_DIR}")
    else:
        names = [service]
        files = [services.deploy_file(service)]

    console = Console(stderr=True)
    started = datetime.now(UTC)
    progress = None if as_json else _Progress(console)
    try:
        result = run_deploy(inventory, files, limit=list(limit), dry=dry, progress=progress)
    except (DeployError, KeyboardInterrupt) as exc:
        # The run may have changed hosts before it stopped: the log must still show it began.
        reason = str(exc) if isinstance(exc, DeployError) else "interrupted by the user"
        changelog.record_run(
            inventory=inventory,
            services=names,
            limit=limit,
            dry=dry,
            started=started,
            result=None,
            error=reason,
        )
        raise
    record = changelog.record_run(
        inventory=inventory, services=names, dry=dry, started=started, result=result, limit=limit
    )

    if as_json:
        click.echo(json.dumps({**result.to_dict(), "record": record["seq"]}, indent=2))
    else:
        _summary(Console(), result)
        path = changelog.changelog_path(record["fleet"])
        click.echo(f"recorded as run {record['seq']} in {path}")
    if result.failed_hosts:
        click.secho(f"failed hosts: {', '.join(result.failed_hosts)}", fg="red", err=True)
        raise SystemExit(1)
