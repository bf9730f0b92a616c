"""The `unops` command. Each sub-command lives in its own module and is registered here."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from unops import __version__
from unops.errors import UnopsError

# Modules under unops.cli that each define `command`, a click command or group.
COMMANDS = [
    "estate",
    "lab",
    "deploy",
    "changes",
    "backup",
    "report",
    "directory",
    "exporter",
    "mail",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="unops")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Show more of what happens: -v for each action, -vv for debug.",
)
def cli(verbose: int) -> None:
    """Operate the ICT office's estate: mission e-mail, directory, backups, Wi-Fi, CMS and PCs.

    Describe the estate as data under inventory/estate/, check it with `unops estate check`,
    rehearse a change on the lab fleet, then converge production with `unops deploy`.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )


for _name in COMMANDS:
    cli.add_command(importlib.import_module(f"unops.cli.{_name}").command)


def main() -> None:
    """Run the CLI; an UnopsError becomes a clear message and exit status 1, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UnopsError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
