"""`unops lab`: boot, inspect, enter and remove the rehearsal fleet."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict

import click

from unops.estate import load_estate
from unops.lab import fleet, keys, paths


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group("lab")
def command() -> None:
    """The rehearsal fleet: real Debian hosts in systemd-nspawn containers on this machine."""


@command.command("up")
@click.argument("hosts", nargs=-1)
def up(hosts: tuple[str, ...]) -> None:
    """Boot the lab hosts (all, or the HOSTS named); running hosts are left as they are."""
    started = time.monotonic()
    fleet.up(hosts, progress=_progress)
    click.echo(f"lab up in {time.monotonic() - started:.0f} s; `unops lab status` shows it")


@command.command("down")
@click.option(
    "--purge",
    is_flag=True,
    help="Also remove the lab's SSH keys, host keys and CA (the caches always stay).",
)
def down(purge: bool) -> None:
    """Stop every lab host and remove all that `up` made: namespaces, links, mounts, rules."""
    fleet.down(progress=_progress, purge=purge)


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
def status(as_json: bool) -> None:
    """Each host, its address, its state and its systemd state; and the lab's key paths."""
    hosts = fleet.status()
    files = {
        "ssh_key": str(paths.SSH_KEY),
        "known_hosts": str(paths.KNOWN_HOSTS),
        "ca_cert": str(paths.CA_CERT),
    }
    if as_json:
        click.echo(json.dumps({"hosts": [asdict(h) for h in hosts], **files}, indent=2))
        return
    click.echo(f"{'host':<12} {'address':<14} {'state':<8} systemd")
    for host in hosts:
        failed = f" (failed: {', '.join(host.failed_units)})" if host.failed_units else ""
        click.echo(f"{host.name:<12} {host.address:<14} {host.state:<8} {host.system}{failed}")
    for label, path in files.items():
        click.echo(f"{label + ':':<13} {path}")


@command.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("remote_command", nargs=-1, type=click.UNPROCESSED)
def ssh(host: str, remote_command: tuple[str, ...]) -> None:
    """Log in to HOST as root (strict host-key checking), or run REMOTE_COMMAND there."""
    target = fleet.select(load_estate(), [host])[0]
    line = keys.ssh_command(str(target.address), " ".join(remote_command) or None)
    if not remote_command:
        line.insert(1, "-t")
    # Hand the terminal to ssh itself, so an interactive login behaves as ssh always does.
    os.execvp(line[0], line)  # noqa: S606
