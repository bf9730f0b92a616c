"""The `unops` command: its help, and `unops deploy` end to end on pyinfra's @local host."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from unops.cli import COMMANDS, cli


def _all_commands(group: click.Group, prefix: str = "unops") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(prefix, group)]
    for name, sub in group.commands.items():
        if isinstance(sub, click.Group):
            found += _all_commands(sub, f"{prefix} {name}")
        else:
            found.append((f"{prefix} {name}", sub))
    return found


def test_help_lists_every_registered_command() -> None:
    """`unops --help` names each command module registered in COMMANDS."""
    outcome = CliRunner().invoke(cli, ["--help"])

    assert outcome.exit_code == 0
    for name in COMMANDS:
        assert f"  {cli.commands[name].name} " in outcome.output


def test_every_option_and_command_has_help_text() -> None:
    """No command lacks a description and no option lacks help text."""
    missing = []
    for path, command in _all_commands(cli):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{path} {param.opts[-1]}")
    assert missing == []


@pytest.fixture
def local_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("UNOPS_CHANGELOG_DIR", str(tmp_path / "changes"))
    inventory = tmp_path / "inventory.py"
    inventory.write_text('here = ["@local"]\n', encoding="utf-8")
    target = tmp_path / "out" / "issue"
    deploy = tmp_path / "write_issue.py"
    deploy.write_text(
        "from pyinfra.operations import files\n"
        f"files.directory(name='Create {target.parent}', path={str(target.parent)!r})\n"
        f"files.put(name='Write {target}', src={str(inventory)!r}, dest={str(target)!r})\n",
        encoding="utf-8",
    )
    return inventory, deploy


def test_deploy_twice_second_run_reports_no_change_and_both_are_logged(
    local_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """Deploy, then deploy again: the second run changes nothing; the log holds both runs."""
    inventory, deploy = local_run
    args = ["deploy", str(deploy), "--inventory", str(inventory), "--json"]

    first = CliRunner().invoke(cli, args)
    second = CliRunner().invoke(cli, args)

    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["changed"] == 2
    assert second.exit_code == 0, second.output
    result = json.loads(second.output)
    assert result["changed"] == 0
    assert result["hosts"]["@local"]["unchanged"] == 2
    assert result["record"] == 2

    log = CliRunner().invoke(cli, ["changes", "--json"])
    (fleet,) = json.loads(log.output)
    assert fleet["intact"]
    assert [run["changed"] for run in fleet["runs"]] == [2, 0]


def test_deploy_summary_names_each_change(local_run: tuple[Path, Path]) -> None:
    """Without --json the run ends with a table and one line per changed operation."""
    inventory, deploy = local_run

    outcome = CliRunner().invoke(cli, ["deploy", str(deploy), "--inventory", str(inventory)])

    assert outcome.exit_code == 0, outcome.output
    assert "@local: changed: Create " in outcome.output
    assert "recorded as run 1 in " in outcome.output


def test_deploy_exits_1_when_a_host_fails(local_run: tuple[Path, Path], tmp_path: Path) -> None:
    """A failed operation makes `unops deploy` exit 1 and name the failed host."""
    inventory, _ = local_run
    failing = tmp_path / "failing.py"
    failing.write_text(
        "from pyinfra.operations import server\n"
        "server.shell(name='Check the spool', commands=['false'])\n",
        encoding="utf-8",
    )

    outcome = CliRunner().invoke(cli, ["deploy", str(failing), "--inventory", str(inventory)])

    assert outcome.exit_code == 1
    assert "failed hosts: @local" in outcome.output


def test_deploy_refuses_a_service_name_that_is_not_a_plain_name(
    local_run: tuple[Path, Path],
) -> None:
    """A SERVICE such as '-rf' or '../x' never reaches a file name; the error says so."""
    inventory, _ = local_run

    for name in ("-rf", "../x"):
        outcome = CliRunner().invoke(cli, ["deploy", "--inventory", str(inventory), "--", name])

        assert outcome.exit_code != 0
        assert f"service {name!r} has no deploy file" in str(outcome.exception)


def test_deploy_of_missing_service_file_is_a_clear_error(local_run: tuple[Path, Path]) -> None:
    """`unops deploy nosuch` says the deploy file is missing and what exists."""
    inventory, _ = local_run

    outcome = CliRunner().invoke(cli, ["deploy", "nosuch", "--inventory", str(inventory)])

    assert outcome.exit_code != 0
    assert "service 'nosuch' has no deploy file" in str(outcome.exception)
    assert "known:" in str(outcome.exception)


def test_deploy_records_its_limit_in_the_change_log(local_run: tuple[Path, Path]) -> None:
    """A run narrowed with --limit says so in its record, for whoever reads the log later."""
    inventory, deploy = local_run

    outcome = CliRunner().invoke(
        cli, ["deploy", str(deploy), "--inventory", str(inventory), "--limit", "@local", "--json"]
    )

    assert outcome.exit_code == 0, outcome.output
    log = CliRunner().invoke(cli, ["changes", "--json"])
    (fleet,) = json.loads(log.output)
    assert fleet["runs"][0]["limit"] == ["@local"]
    assert "(limited to @local)" in CliRunner().invoke(cli, ["changes"]).output
