"""The host-side runner's records: they verify with unops.chain, and tampering is caught."""

from __future__ import annotations

import datetime as dt
import importlib.machinery
import importlib.util
import json
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from unops import PROJECT_ROOT, chain
from unops.backup import records

RUNNER = PROJECT_ROOT / "deploys/templates/backup/usr/local/lib/unops/backup-run"


def _runner() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("backup_run", str(RUNNER))
    spec = importlib.util.spec_from_loader("backup_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _payload(n: int, kind: str = "backup") -> dict[str, object]:
    return {
        "time": f"2026-12-0{n}T01:30:00Z",
        "host": "mail1",
        "kind": kind,
        "result": "ok",
        "exit_code": 0,
        "snapshot": f"{n:08x}",
        "bytes": 1000 * n,
        "files": 10 * n,
        "duration_seconds": 1.5,
        "detail": "Ünïcode stays UTF-8",
    }


def _written(tmp_path: Path, count: int = 4) -> Path:
    runner = _runner()
    path = tmp_path / "mail1.jsonl"
    for n in range(1, count + 1):
        runner.append_record(str(path), _payload(n))
    return path


def test_runner_records_verify_with_unops_chain(tmp_path: Path) -> None:
    """Records appended by the stdlib runner form a chain that unops.chain finds intact."""
    path = _written(tmp_path)
    report = chain.verify(path)
    assert report.intact, report.problems
    assert [r["seq"] for r in report.records] == [1, 2, 3, 4]
    parsed = records.read_file(path)
    assert parsed.intact, parsed.problems
    assert [r.snapshot for r in parsed.records] == ["00000001", "00000002", "00000003", "00000004"]
    assert parsed.head == chain.digest(path.read_text(encoding="utf-8").splitlines()[-1])


def test_runner_and_unops_chain_append_the_same_bytes(tmp_path: Path) -> None:
    """The runner and unops.chain.append write byte-identical chains from the same payloads."""
    runner = _runner()
    ours, theirs = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for n in (1, 2, 3):
        runner.append_record(str(ours), _payload(n))
        chain.append(theirs, _payload(n))
    assert ours.read_bytes() == theirs.read_bytes()


def test_edited_record_is_reported(tmp_path: Path) -> None:
    """A record whose result was changed from failed to ok breaks the chain at the next record."""
    path = _written(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[1])
    record["bytes"] = 1
    lines[1] = chain.canonical(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = records.read_file(path)
    assert not parsed.intact
    assert any("line 3" in p and "prev" in p for p in parsed.problems), parsed.problems


def test_deleted_record_is_reported(tmp_path: Path) -> None:
    """A record removed from the middle shows as a break in both seq and prev."""
    path = _written(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = records.read_file(path)
    assert any("seq is 3, expected 2" in p for p in parsed.problems), parsed.problems


def test_malformed_field_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """A record with an unknown kind is reported with the field and the value, others still read."""
    runner = _runner()
    path = tmp_path / "mail1.jsonl"
    runner.append_record(str(path), _payload(1))
    runner.append_record(str(path), {**_payload(2), "kind": "bakcup"})
    parsed = records.read_file(path)
    assert [r.seq for r in parsed.records] == [1]
    assert parsed.problems == [
        "seq 2: kind is 'bakcup', expected one of " + ", ".join(records.KINDS)
    ]


def test_record_of_another_host_is_a_problem(tmp_path: Path) -> None:
    """A record naming another host inside mail1's chain is reported: records were mixed up."""
    path = _written(tmp_path, 2)
    parsed = records.parse_lines("mail2", path.read_text(encoding="utf-8").splitlines())
    assert parsed.problems[0] == "seq 1: host is 'mail1', but this is the chain of 'mail2'"


def _restic_config(tmp_path: Path) -> Path:
    if shutil.which("restic") is None:
        pytest.fail("restic is not installed on the control machine; run `make host-packages`")
    source = tmp_path / "vmail" / "example.org" / "ana" / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (source / folder).mkdir(parents=True)
    (source / "cur" / "1764700000.M1P1.mail1:2,S").write_bytes(b"Subject: one\r\n\r\nbody\r\n")
    (source / "new" / "1764700001.M2P2.mail1").write_bytes(b"Subject: two\r\n\r\n\x00\xff\r\n")
    password = tmp_path / "restic.pass"
    password.write_text("unit-test-only\n")
    password.chmod(0o600)
    config = {
        "host": "mail1",
        "records": str(tmp_path / "records.jsonl"),
        "repository": str(tmp_path / "repo"),
        "password_file": str(password),
        "cache_dir": str(tmp_path / "cache"),
        "paths": [str(tmp_path / "vmail")],
        "keep": {"daily": 14, "weekly": 8, "monthly": 12},
        "scratch": str(tmp_path),
        "drill": [{"kind": "maildir", "path": str(tmp_path / "vmail")}],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_runner_runs_restic_and_records_each_run(tmp_path: Path) -> None:
    """A daily run, a check and a drill against a local repository leave five verified records."""
    config = str(_restic_config(tmp_path))
    runner = _runner()
    assert runner.main(["--config", config, "init"]) == 0
    assert runner.main(["--config", config, "daily"]) == 0
    assert runner.main(["--config", config, "check", "--subset", "1/1"]) == 0
    assert runner.main(["--config", config, "drill"]) == 0
    parsed = records.read_file(tmp_path / "records.jsonl", host="mail1")
    assert parsed.intact, parsed.problems
    assert [(r.kind, r.result) for r in parsed.records] == [
        ("backup", "ok"),
        ("forget", "ok"),
        ("check", "ok"),
        ("drill", "ok"),
    ]
    backup, _, check, drill = parsed.records
    assert backup.files == 2 and backup.snapshot and len(backup.snapshot) == 8
    assert check.detail == "1/1"
    assert drill.snapshot == backup.snapshot
    assert drill.detail.startswith("2 messages identical")


def test_restore_refuses_to_overwrite_live_data(tmp_path: Path) -> None:
    """A restore into the backed-up folder is refused and recorded as failed, nothing written."""
    config = str(_restic_config(tmp_path))
    runner = _runner()
    runner.main(["--config", config, "init"])
    runner.main(["--config", config, "backup"])
    live = tmp_path / "vmail"
    before = sorted(p.name for p in live.rglob("*"))
    code = runner.main(["--config", config, "restore", "--path", str(live), "--to", str(live)])
    assert code == 2
    assert sorted(p.name for p in live.rglob("*")) == before
    last = records.read_file(tmp_path / "records.jsonl", host="mail1").records[-1]
    assert (last.kind, last.result) == ("restore", "failed")
    assert "overlaps the live data" in last.detail


def test_daily_check_shares_cover_all_data_in_any_week() -> None:
    """Seven days in a row, from any start, read shares 1 to 7 of 7: all data once a week."""
    runner = _runner()
    for start in range(7):
        first = dt.date(2026, 11, 30) + dt.timedelta(days=start)
        shares = {runner.todays_share(first + dt.timedelta(days=n), 7) for n in range(7)}
        assert shares == {f"{n}/7" for n in range(1, 8)}


def test_restore_of_a_path_the_snapshot_lacks_fails(tmp_path: Path) -> None:
    """Restoring a path that no snapshot holds is a failure that says so, not an empty success."""
    config = str(_restic_config(tmp_path))
    runner = _runner()
    runner.main(["--config", config, "init"])
    runner.main(["--config", config, "backup"])
    target = tmp_path / "out"
    code = runner.main(
        ["--config", config, "restore", "--path", "/nowhere/ana", "--to", str(target)]
    )
    assert code == 1
    last = records.read_file(tmp_path / "records.jsonl", host="mail1").records[-1]
    assert (last.kind, last.result, last.files) == ("restore", "failed", 0)
    assert last.detail == f"snapshot {last.snapshot} holds nothing under /nowhere/ana"


def test_a_new_records_file_takes_its_folders_group_and_stays_0640(tmp_path: Path) -> None:
    """The monitoring reader reads the records through the folder's group: a file the runner
    creates gets that group and mode 0640, so no one else reads it."""
    # Root (as in CI) gives the folder nogroup, which no file gets by default; anyone else one
    # of their other groups, or at least their own.
    others = [gid for gid in os.getgroups() if gid != os.getegid()]
    group = 65534 if os.geteuid() == 0 else (others or [os.getegid()])[0]
    folder = tmp_path / "backup"
    folder.mkdir()
    os.chown(folder, -1, group)
    path = folder / "records.jsonl"
    _runner().append_record(str(path), _payload(1))
    info = path.stat()
    assert (info.st_gid, info.st_mode & 0o777) == (group, 0o640)
