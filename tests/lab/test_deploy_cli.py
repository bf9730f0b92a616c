"""`unops deploy` on the rehearsal fleet: real SSH to lab hosts, run twice, logged and dry-run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from unops.estate import load_estate
from unops.lab import paths

pytestmark = pytest.mark.lab

# Two hosts that no other deploy converges yet, so the smoke deploy does not race another test.
HOSTS = ("cms1", "ap-ga1-02")


def _unops(*args: str, log_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UNOPS_CHANGELOG_DIR": str(log_dir)}
    return subprocess.run(
        [sys.executable, "-m", "unops", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not paths.SSH_KEY.is_file() or not paths.KNOWN_HOSTS.is_file():
        pytest.fail(f"the lab is not up ({paths.SSH_KEY} missing); run `unops lab up` first")
    lab = {host.name: host.address for host in load_estate().lab_hosts()}
    for name in HOSTS:
        try:
            socket.create_connection((str(lab[name]), 22), timeout=5).close()
        except OSError as exc:
            pytest.fail(
                f"lab host {name} ({lab[name]}) does not answer on port 22 ({exc}); "
                "run `unops lab up`"
            )
    return tmp_path_factory.mktemp("changes")


def _limit() -> list[str]:
    return [arg for host in HOSTS for arg in ("--limit", host)]


def test_smoke_deploy_converges_and_second_run_changes_nothing(log_dir: Path) -> None:
    """Two runs of the smoke deploy over SSH: the second reports no change on either host."""
    args = ["deploy", "lab_smoke", "--inventory", "lab", *_limit(), "--json"]

    first = _unops(*args, log_dir=log_dir)
    assert first.returncode == 0, first.stderr + first.stdout
    assert sorted(json.loads(first.stdout)["hosts"]) == sorted(HOSTS)

    second = _unops(*args, log_dir=log_dir)
    assert second.returncode == 0, second.stderr + second.stdout
    result = json.loads(second.stdout)
    assert result["changed"] == 0, result
    for host in HOSTS:
        assert result["hosts"][host]["unchanged"] == 3
        assert result["hosts"][host]["failed"] == 0


def test_dry_run_after_convergence_would_change_nothing(log_dir: Path) -> None:
    """A dry run on converged hosts lists the three operations and no change."""
    done = _unops(
        "deploy", "lab_smoke", "--inventory", "lab", *_limit(), "--dry", "--json", log_dir=log_dir
    )

    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["dry"]
    assert result["changed"] == 0
    assert [op["name"] for op in result["hosts"]["cms1"]["operations"]] == [
        "Create /srv/unops-smoke",
        "Write /srv/unops-smoke/README",
        "Install tree",
    ]


def test_change_log_holds_every_lab_run_with_an_intact_chain(log_dir: Path) -> None:
    """Each run above left a record in lab.jsonl; `unops changes` reads them and the chain holds."""
    done = _unops("changes", "--fleet", "lab", "--host", "cms1", "--json", log_dir=log_dir)

    assert done.returncode == 0, done.stderr + done.stdout
    (log,) = json.loads(done.stdout)
    assert log["intact"]
    assert log["records"] == 3
    assert [run["dry"] for run in log["runs"]] == [False, False, True]
    assert all(run["services"] == ["lab_smoke"] for run in log["runs"])
    assert list(log["runs"][1]["hosts"]) == ["cms1"]
    assert log["runs"][0]["limit"] == list(HOSTS)


def test_operation_names_are_each_hosts_own(log_dir: Path, tmp_path: Path) -> None:
    """One operation line named after its host is reported with each host's own name."""
    deploy = tmp_path / "greet.py"
    deploy.write_text(
        "from pyinfra import host\nfrom pyinfra.operations import server\n"
        "server.shell(name=f'Greet {host.name}', commands=['true'])\n",
        encoding="utf-8",
    )

    done = _unops(
        "deploy", str(deploy), "--inventory", "lab", *_limit(), "--json", log_dir=tmp_path
    )

    assert done.returncode == 0, done.stderr + done.stdout
    hosts = json.loads(done.stdout)["hosts"]
    for name in HOSTS:
        assert [op["name"] for op in hosts[name]["operations"]] == [f"Greet {name}"]
