"""`unops backup` refuses bad input before it connects to any host."""

from __future__ import annotations

from click.testing import CliRunner

from unops.cli import cli
from unops.errors import BackupError


def test_restore_refuses_relative_paths_before_connecting() -> None:
    """A relative --path or --to is refused with an example of what is accepted."""
    result = CliRunner().invoke(
        cli, ["backup", "restore", "mail1", "--path", "var/vmail", "--to", "/var/tmp/r"]
    )
    assert isinstance(result.exception, BackupError)
    assert "must be absolute paths on mail1" in str(result.exception)
    assert "--path /var/vmail/" in str(result.exception)


def test_status_of_a_host_that_is_not_backed_up_names_those_that_are() -> None:
    """Asking for the backups of the backup host itself lists the hosts that are backed up."""
    result = CliRunner().invoke(cli, ["backup", "status", "backup1"])
    assert isinstance(result.exception, BackupError)
    assert str(result.exception) == (
        "host 'backup1' is not backed up in the lab fleet; backed-up hosts: "
        "dir1, mail1, mail2, mail3, mail4, cms1"
    )


def test_every_backup_option_has_help_text() -> None:
    """Each option of each `unops backup` and `unops report` command says what it does."""
    for group in ("backup", "report"):
        command = cli.commands[group]
        for sub in command.commands.values():  # type: ignore[attr-defined]
            for param in sub.params:
                if param.param_type_name == "option":
                    assert param.help, f"unops {group} {sub.name} {param.opts} has no help"
