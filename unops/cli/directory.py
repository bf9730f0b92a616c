"""`unops directory`: reconcile a roster into the directory, reset passwords, show its state."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from unops.directory import client
from unops.directory.plan import Plan, plan_sync
from unops.directory.roster import read_roster
from unops.errors import DirectoryError, UnopsError
from unops.estate import load_estate

fleet_option = click.option(
    "--fleet",
    type=click.Choice(["lab", "production"]),
    default="lab",
    show_default=True,
    help="Which fleet's directory: the rehearsal fleet or production.",
)


@click.group("directory")
def command() -> None:
    """The LDAP directory of mailboxes: sync a roster, set passwords, compare the replicas."""


def _plan_lines(plan: Plan) -> list[str]:
    lines = [f"added {box.address} on {box.server}" for box in plan.adds]
    for label, changes in (("changed", plan.changes), ("disabled", plan.disables)):
        for change in changes:
            what = ", ".join(
                f"{name} {old!r} -> {new!r}" for name, (old, new) in change.fields.items()
            )
            lines.append(f"{label} {change.address}: {what}")
    lines += [f"deleted {address}" for address in plan.deletes]
    return lines


def _plan_json(plan: Plan, dry: bool) -> dict[str, Any]:
    return {
        "dry": dry,
        "counts": plan.counts(),
        "added": [{"address": box.address, "server": box.server} for box in plan.adds],
        "changed": [
            {"address": c.address, "fields": {k: list(v) for k, v in c.fields.items()}}
            for c in plan.changes
        ],
        "disabled": [{"address": c.address} for c in plan.disables],
        "deleted": plan.deletes,
    }


@command.command("sync")
@click.argument("roster", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Delete entries not in the roster (else disable them).")
@click.option("--dry", is_flag=True, help="Show what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON, no progress.")
@fleet_option
def sync(roster: Path, prune: bool, dry: bool, as_json: bool, fleet: str) -> None:
    """Reconcile ROSTER (CSV: address,mission,display_name,quota_mb,state[,server]) into LDAP.

    Adds the accounts that are missing (on the roster's server, or on the least-loaded mail
    server), changes those that differ, and disables those not in the roster (deletes them with
    --prune). The whole roster is checked first: one bad row and nothing changes. A second run
    with the same roster changes nothing.
    """
    estate = load_estate()
    entries = read_roster(roster, estate)
    conn, base = client.admin_connection(estate, fleet)
    try:
        current = client.read_mailboxes(conn, base)
        servers = sorted(host.name for host in estate.hosts_with_role("mail"))
        plan = plan_sync(current, entries, servers, prune=prune)
        total = sum(plan.counts().values())
        if not dry and total and not as_json and sys.stderr.isatty():
            with click.progressbar(
                length=total, label="Syncing the directory", file=sys.stderr
            ) as bar:
                client.apply_plan(conn, base, plan, progress=bar.update)
        elif not dry and total:
            # No terminal to draw on (or JSON wanted): standard output stays what was done only.
            client.apply_plan(conn, base, plan)
    finally:
        conn.unbind()

    if as_json:
        click.echo(json.dumps(_plan_json(plan, dry), indent=2))
        return
    for line in _plan_lines(plan):
        click.echo(f"would be {line}" if dry else line)
    counts = ", ".join(f"{count} {name}" for name, count in plan.counts().items())
    verb = "would change" if dry else "changed"
    if plan.empty:
        click.echo(
            f"{len(entries)} accounts in {roster}: the directory already matches; no change."
        )
    else:
        click.echo(f"{len(entries)} accounts in {roster}: {verb} {counts}.")


@command.command("passwd")
@click.argument("address")
@fleet_option
def passwd(address: str, fleet: str) -> None:
    """Set the password of mailbox ADDRESS, read from standard input (never echoed or logged).

    On a terminal it asks twice; otherwise it reads the first line of standard input, so that
    the service desk can pipe a generated password in.
    """
    if sys.stdin.isatty():
        secret = click.prompt(
            f"New password for {address}", hide_input=True, confirmation_prompt=True
        )
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    estate = load_estate()
    conn, base = client.admin_connection(estate, fleet)
    try:
        client.set_password(conn, base, address, secret)
    finally:
        conn.unbind()
    click.echo(f"password of {address} set")


def _replica_state(estate: Any, fleet: str, endpoint: client.Endpoint, base: str) -> dict[str, Any]:
    try:
        conn = client.service_connection(endpoint, estate, fleet, "exporter")
    except UnopsError as exc:
        return {"name": endpoint.name, "reachable": False, "error": str(exc), "context_csn": []}
    try:
        return {
            "name": endpoint.name,
            "reachable": True,
            "context_csn": client.context_csn(conn, base),
        }
    except DirectoryError as exc:
        return {"name": endpoint.name, "reachable": True, "error": str(exc), "context_csn": []}
    finally:
        conn.unbind()


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@fleet_option
def status(as_json: bool, fleet: str) -> None:
    """Mailboxes per home server, disabled ones, and whether every replica matches the provider.

    A replica is in sync when its contextCSN equals the provider's; exits 1 if one is not.
    """
    estate = load_estate()
    conn, base = client.admin_connection(estate, fleet)
    try:
        boxes = client.read_mailboxes(conn, base)
        provider_csn = client.context_csn(conn, base)
    finally:
        conn.unbind()
    per_server = Counter(box.server for box in boxes)
    replicas = [
        _replica_state(estate, fleet, endpoint, base)
        for endpoint in client.endpoints(estate, fleet, "mail")
    ]
    for replica in replicas:
        replica["in_sync"] = bool(provider_csn) and replica["context_csn"] == provider_csn
    state: dict[str, Any] = {
        "fleet": fleet,
        "base": base,
        "mailboxes": len(boxes),
        "disabled": sum(1 for box in boxes if box.state == "disabled"),
        "per_server": dict(sorted(per_server.items())),
        "provider_context_csn": provider_csn,
        "replicas": replicas,
    }
    if as_json:
        click.echo(json.dumps(state, indent=2))
    else:
        click.echo(f"{state['mailboxes']} mailboxes under {base}, {state['disabled']} disabled")
        for server, count in state["per_server"].items():
            click.echo(f"  {server}: {count}")
        click.echo(f"provider contextCSN: {' '.join(provider_csn) or '(none)'}")
        for replica in replicas:
            verdict = "in sync" if replica["in_sync"] else "BEHIND or unreachable"
            detail = replica.get("error") or " ".join(replica["context_csn"])
            click.echo(f"  replica {replica['name']}: {verdict} ({detail})")
    if not all(replica["in_sync"] for replica in replicas):
        raise SystemExit(1)
