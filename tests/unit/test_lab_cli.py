"""`unops lab`: its sub-commands and options are there and explained."""

from __future__ import annotations

from click.testing import CliRunner

from unops.cli import cli
from unops.cli.lab import command


def test_lab_offers_up_down_status_and_ssh():
    """`unops lab --help` lists the four sub-commands."""
    result = CliRunner().invoke(cli, ["lab", "--help"])
    assert result.exit_code == 0
    for name in ("up", "down", "status", "ssh"):
        assert f"  {name} " in result.output


def test_every_lab_option_has_help_text():
    """No option of any lab sub-command is left without a help text."""
    for name, sub in command.commands.items():
        for param in sub.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"`unops lab {name} {param.opts[0]}` has no help text"


def test_status_has_a_json_option_for_scripts():
    """`unops lab status --json` exists, so scripts need not parse the table."""
    opts = [opt for param in command.commands["status"].params for opt in param.opts]
    assert "--json" in opts
