"""run_deploy against pyinfra's @local host: real pyinfra runs that write files under tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from unops import services
from unops.deploying import DeployEvent, run_deploy
from unops.errors import DeployError, EstateError
from unops.estate import DEFAULT_ROOT


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    return _write(tmp_path / "inventory.py", 'here = ["@local"]\n')


def _file_deploy(tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "out" / "motd"
    deploy = _write(
        tmp_path / "write_motd.py",
        "from pyinfra.operations import files\n"
        f"files.directory(name='Create {target.parent}', path={str(target.parent)!r})\n"
        f"files.put(name='Write {target}', src={__file__!r}, dest={str(target)!r})\n",
    )
    return deploy, target


def test_second_run_of_an_idempotent_deploy_changes_nothing(
    tmp_path: Path, local_inventory: Path
) -> None:
    """The first run creates the directory and the file; the second reports zero changes."""
    deploy, target = _file_deploy(tmp_path)

    first = run_deploy(local_inventory, [deploy])
    assert target.read_bytes() == Path(__file__).read_bytes()
    assert first.changed == 2
    assert first.failed_hosts == []
    assert [op.name for op in first.hosts["@local"].operations] == [
        f"Create {target.parent}",
        f"Write {target}",
    ]

    second = run_deploy(local_inventory, [deploy])
    assert second.changed == 0
    assert second.hosts["@local"].unchanged == 2
    assert second.failed_hosts == []


def test_dry_run_lists_the_change_and_executes_nothing(
    tmp_path: Path, local_inventory: Path
) -> None:
    """A dry run says which operations would change and leaves the target untouched."""
    deploy, target = _file_deploy(tmp_path)

    result = run_deploy(local_inventory, [deploy], dry=True)

    assert result.dry
    assert result.changed == 2
    assert not target.parent.exists()


def test_failed_operation_fails_the_host_with_its_stderr(
    tmp_path: Path, local_inventory: Path
) -> None:
    """A command that fails marks its host failed, keeps its stderr and stops later operations."""
    deploy = _write(
        tmp_path / "failing.py",
        "from pyinfra.operations import server\n"
        "server.shell(name='Run a check that fails', commands=['echo no-such-user >&2; false'])\n"
        f"server.shell(name='Touch later', commands=['touch {tmp_path}/later'])\n",
    )

    result = run_deploy(local_inventory, [deploy])

    assert result.failed_hosts == ["@local"]
    host = result.hosts["@local"]
    assert host.failed == 1
    assert host.operations[0].error == "no-such-user"
    assert [op.name for op in host.operations] == ["Run a check that fails"]
    assert not (tmp_path / "later").exists()


def test_progress_reports_each_operation_per_host(tmp_path: Path, local_inventory: Path) -> None:
    """The progress callback hears the connection and each finished operation with its change."""
    deploy, _ = _file_deploy(tmp_path)
    events: list[DeployEvent] = []

    run_deploy(local_inventory, [deploy], progress=events.append)

    kinds = [event.kind for event in events]
    assert kinds[0] == "connected"
    done = [(e.host, e.operation, e.changed) for e in events if e.kind == "operation"]
    assert done == [
        ("@local", f"Create {tmp_path / 'out'}", True),
        ("@local", f"Write {tmp_path / 'out' / 'motd'}", True),
    ]


def test_invalid_estate_stops_the_run_before_any_connection(
    tmp_path: Path, local_inventory: Path
) -> None:
    """A broken estate raises EstateError and the deploy never runs."""
    estate = tmp_path / "estate"
    shutil.copytree(DEFAULT_ROOT, estate)
    (estate / "hosts.toml").write_text("[[host]]\nname = '-evil'\n", encoding="utf-8")
    deploy, target = _file_deploy(tmp_path)

    with pytest.raises(EstateError):
        run_deploy(local_inventory, [deploy], estate_root=estate)

    assert not target.parent.exists()


def test_limit_that_matches_no_host_is_refused(tmp_path: Path, local_inventory: Path) -> None:
    """--limit with an unknown host name fails with the known host names, before connecting."""
    deploy, target = _file_deploy(tmp_path)

    with pytest.raises(DeployError, match=r"'mx9' matches no host or group; hosts: @local"):
        run_deploy(local_inventory, [deploy], limit=["mx9"])

    assert not target.parent.exists()


def test_deploy_file_that_raises_is_reported_without_running(
    tmp_path: Path, local_inventory: Path
) -> None:
    """An exception in deploy code becomes a DeployError naming it; nothing is executed."""
    deploy = _write(tmp_path / "broken.py", "raise ValueError('mail_domains is empty')\n")

    with pytest.raises(
        DeployError, match=r"broken.py:1: the deploy raised ValueError: mail_domains is empty"
    ):
        run_deploy(local_inventory, [deploy])


def test_missing_deploy_file_is_refused(tmp_path: Path, local_inventory: Path) -> None:
    """A deploy file that does not exist is named in the error."""
    with pytest.raises(DeployError, match=r"nothing\.py"):
        run_deploy(local_inventory, [tmp_path / "nothing.py"])


def test_error_in_an_included_deploy_names_the_included_file(
    tmp_path: Path, local_inventory: Path
) -> None:
    """An exception in a file pulled in with local.include is reported against that file."""
    inner = _write(tmp_path / "mail.py", "\n\nraise RuntimeError('no mail server here')\n")
    outer = _write(
        tmp_path / "all.py", f"from pyinfra import local\nlocal.include({str(inner)!r})\n"
    )

    with pytest.raises(DeployError, match=r"mail\.py:3: the deploy raised RuntimeError: no mail"):
        run_deploy(local_inventory, [outer])


def test_unreachable_host_fails_alone_and_says_why(tmp_path: Path) -> None:
    """A host whose SSH port refuses is failed with the reason; the reachable host still runs."""
    inventory = _write(
        tmp_path / "inventory.py",
        'here = ["@local"]\n'
        'away = [("nowhere", {"ssh_hostname": "127.0.0.1", "ssh_port": 1,'
        ' "ssh_connect_retries": 0})]\n',
    )
    deploy, target = _file_deploy(tmp_path)

    result = run_deploy(inventory, [deploy])

    assert result.failed_hosts == ["nowhere"]
    error = result.hosts["nowhere"].error or ""
    assert "Could not connect" in error and "127.0.0.1" in error
    assert result.hosts["@local"].changed == 2
    assert target.is_file()


def test_services_run_in_the_defined_order_and_skip_missing_deploys(tmp_path: Path) -> None:
    """Only services with a deploy file are run, in ORDER, whatever else the folder holds."""
    for name in ("monitoring", "directory", "lab_smoke", "mail"):
        _write(tmp_path / f"{name}.py", "")

    assert services.available(tmp_path) == ["directory", "mail", "monitoring"]
    assert services.deploy_files(tmp_path) == [
        tmp_path / "directory.py",
        tmp_path / "mail.py",
        tmp_path / "monitoring.py",
    ]
    assert services.deploy_file("lab_smoke", tmp_path) == tmp_path / "lab_smoke.py"


def test_unknown_service_lists_the_deploys_that_exist(tmp_path: Path) -> None:
    """A service without a deploy file is refused with the names that would work."""
    _write(tmp_path / "mail.py", "")
    _write(tmp_path / "all.py", "")

    with pytest.raises(DeployError, match=r"service 'mial' has no deploy file .*; known: mail \("):
        services.deploy_file("mial", tmp_path)


@pytest.mark.parametrize(("group", "planned"), [("mail", True), ("cms", False)])
def test_role_deploy_is_planned_only_on_hosts_of_its_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, planned: bool
) -> None:
    """deploys/mail.py runs on hosts of the mail group and is not even planned elsewhere."""
    monkeypatch.setattr(services, "DEPLOYS_DIR", tmp_path)
    inventory = _write(tmp_path / "inventory.py", f'{group} = ["@local"]\n')
    marker = tmp_path / "planned"
    deploy = _write(
        tmp_path / "mail.py",
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from pyinfra.operations import server\n"
        "server.shell(name='Check the mail queue', commands=['true'])\n",
    )

    result = run_deploy(inventory, [deploy])

    assert marker.exists() is planned
    assert len(result.hosts["@local"].operations) == int(planned)
    assert result.failed_hosts == []
