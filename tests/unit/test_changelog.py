"""The deploy change log: chained records of runs, read back and checked by `unops changes`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from unops import changelog
from unops.cli import cli
from unops.deploying import DeployResult, HostResult, OpResult
from unops.errors import UnopsError


@pytest.fixture(autouse=True)
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "changes"
    monkeypatch.setenv("UNOPS_CHANGELOG_DIR", str(folder))
    return folder


def _result(changed_on: str | None = "mail1") -> DeployResult:
    result = DeployResult(inventory="lab", deploy_files=["deploys/mail.py"], dry=False)
    for name in ("mail1", "mail2"):
        changed = name == changed_on
        result.hosts[name] = HostResult(
            changed=int(changed),
            unchanged=1 - int(changed),
            fleet="lab",
            operations=[OpResult("Configure /etc/postfix/main.cf", changed, True)],
        )
    return result


def _record(started: datetime | None = None, changed_on: str | None = "mail1") -> None:
    changelog.record_run(
        inventory="lab",
        services=["mail"],
        dry=False,
        started=started or datetime.now(UTC),
        result=_result(changed_on),
    )


def _changes(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(cli, ["changes", *args])
    return outcome.exit_code, outcome.output


def test_run_record_holds_who_what_where_and_commit(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record names the user and the sudo user, the inventory, commit, services and each op."""
    monkeypatch.setenv("SUDO_USER", "amina")
    _record()

    record = json.loads((log_dir / "lab.jsonl").read_text(encoding="utf-8"))
    assert record["who"]["sudo_user"] == "amina"
    assert record["who"]["user"]
    assert record["inventory"] == "lab"
    assert record["services"] == ["mail"]
    assert len(record["checkout"]["commit"]) == 40
    assert isinstance(record["checkout"]["dirty"], bool)
    assert record["hosts"]["mail1"]["operations"] == [
        {"name": "Configure /etc/postfix/main.cf", "changed": True, "success": True}
    ]
    assert record["seq"] == 1


def test_changes_lists_runs_and_reports_an_intact_chain() -> None:
    """Two runs are listed oldest first with what changed, and the chain is reported intact."""
    _record(changed_on="mail1")
    _record(changed_on="mail2")

    status, output = _changes("--fleet", "lab")

    assert status == 0
    assert output.index("run 1 ") < output.index("run 2 ")
    assert "mail1: changed: Configure /etc/postfix/main.cf" in output
    assert "mail2: changed: Configure /etc/postfix/main.cf" in output
    assert "chain intact: 2 records" in output


def test_changes_detects_an_edited_record(log_dir: Path) -> None:
    """Rewriting what a past run changed breaks the chain, and `unops changes` exits 1."""
    _record(changed_on="mail1")
    _record(changed_on="mail2")
    _record(changed_on=None)
    path = log_dir / "lab.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace('"changed":true', '"changed":false')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    status, output = _changes()

    assert status == 1
    assert "chain BROKEN" in output
    assert "line 2 (seq 2): prev does not match" in output


def test_changes_detects_a_removed_record(log_dir: Path) -> None:
    """Deleting a run from the middle of the log is reported, with the line where it shows."""
    for _ in range(3):
        _record()
    path = log_dir / "lab.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text(lines[0] + "\n" + lines[2] + "\n", encoding="utf-8")

    status, output = _changes("--json")

    assert status == 1
    (log,) = json.loads(output)
    assert not log["intact"]
    assert any("line 2: seq is 3, expected 2" in problem for problem in log["problems"])


def test_since_keeps_only_recent_runs() -> None:
    """--since 24h leaves out a run started two days ago."""
    _record(started=datetime.now(UTC) - timedelta(days=2), changed_on="mail1")
    _record(changed_on="mail2")

    status, output = _changes("--since", "24h", "--json")

    assert status == 0
    (log,) = json.loads(output)
    assert [run["seq"] for run in log["runs"]] == [2]
    assert log["records"] == 2


def test_host_filter_shows_only_that_hosts_operations() -> None:
    """--host mail2 keeps the runs on mail2 and drops mail1's operations from them."""
    _record(changed_on="mail1")

    status, output = _changes("--host", "mail2")

    assert status == 0
    assert "mail2: no change (1 operations)" in output
    assert "mail1" not in output


def test_since_rejects_a_value_that_is_not_a_time() -> None:
    """A --since value that is neither relative nor ISO is refused with the accepted forms."""
    with pytest.raises(UnopsError, match=r"'yesterday' is not a time; expected 30m, 24h"):
        changelog.parse_since("yesterday")


def test_since_accepts_relative_and_iso_times() -> None:
    """24h and an ISO date are both read as UTC moments."""
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert changelog.parse_since("24h", now) == datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert changelog.parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)


def test_run_that_could_not_start_is_recorded_with_its_error(log_dir: Path) -> None:
    """A run that failed before pyinfra reported anything still leaves a record saying why."""
    changelog.record_run(
        inventory="production",
        services=["mail"],
        dry=True,
        started=datetime.now(UTC),
        result=None,
        error="--limit 'mx9' matches no host or group",
    )

    status, output = _changes("--fleet", "production")

    assert status == 0
    assert "did not run: --limit 'mx9' matches no host or group" in output


def test_changes_without_any_log_says_so_and_succeeds(log_dir: Path) -> None:
    """Before the first deploy there is nothing to verify: the command says where it looked."""
    status, output = _changes()

    assert status == 0
    assert f"no change log yet in {log_dir}" in output
