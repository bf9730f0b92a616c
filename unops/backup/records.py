"""Backup records: one chained JSON line per run on each backed-up host, read and checked here.

The hosts write them with the stdlib-only runner (deploys/templates/backup/.../backup-run) in the
format of `unops.chain`; docs/backup-records.md describes every field. Reading never raises on bad
content: a record that is not well formed is reported as a problem of its host's chain, so that
a report can still say what the rest of the chain holds.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unops import chain
from unops.errors import BackupError

log = logging.getLogger(__name__)

RECORDS_PATH = "/var/lib/unops/backup/records.jsonl"  # on each backed-up host
KINDS = ("backup", "forget", "check", "drill", "restore")
RESULTS = ("ok", "failed")


@dataclass(frozen=True)
class BackupRecord:
    """One run on one host, as its record says."""

    seq: int
    time: dt.datetime
    host: str
    kind: str
    result: str
    exit_code: int
    snapshot: str | None
    bytes: int | None
    files: int | None
    duration_seconds: float
    detail: str

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def day(self) -> dt.date:
        return self.time.date()


@dataclass
class HostRecords:
    """A host's chain: the records that are well formed, and every problem found in it."""

    host: str
    records: list[BackupRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    head: str = chain.GENESIS
    # The digest of each record's line by seq: a later reader checks that a head it saw before
    # is still there (records cut off the end leave a chain that is otherwise consistent).
    digests: dict[int, str] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def last_seq(self) -> int:
        return max(self.digests, default=0)


def _int_or_none(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is {value!r}, expected a whole number or null")
    return value


def parse_record(raw: Mapping[str, Any]) -> BackupRecord:
    """A record's fields, checked; ValueError names the field, the value and what is accepted."""
    kind, result = raw.get("kind"), raw.get("result")
    if kind not in KINDS:
        raise ValueError(f"kind is {kind!r}, expected one of {', '.join(KINDS)}")
    if result not in RESULTS:
        raise ValueError(f"result is {result!r}, expected 'ok' or 'failed'")
    text = raw.get("time")
    try:
        when = dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(
            f"time is {text!r}, expected ISO 8601 UTC such as 2026-12-03T01:30:00Z"
        ) from None
    exit_code = _int_or_none(raw, "exit_code")
    if exit_code is None:
        raise ValueError("exit_code is missing")
    duration = raw.get("duration_seconds")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
        raise ValueError(f"duration_seconds is {duration!r}, expected seconds (0 or more)")
    snapshot = raw.get("snapshot")
    if snapshot is not None and not isinstance(snapshot, str):
        raise ValueError(f"snapshot is {snapshot!r}, expected a short id or null")
    return BackupRecord(
        seq=int(raw["seq"]),
        time=when,
        host=str(raw.get("host", "")),
        kind=str(kind),
        result=str(result),
        exit_code=exit_code,
        snapshot=snapshot,
        bytes=_int_or_none(raw, "bytes"),
        files=_int_or_none(raw, "files"),
        duration_seconds=float(duration),
        detail=str(raw.get("detail", "")),
    )


def parse_lines(host: str, lines: Iterable[str]) -> HostRecords:
    """Verify a host's chain and read its records; every broken link or bad field is a problem."""
    report = chain.verify_lines(lines)
    result = HostRecords(host=host, problems=list(report.problems), head=report.head)
    for raw in report.records:
        if isinstance(raw.get("seq"), int):
            result.digests[raw["seq"]] = chain.digest(chain.canonical(raw))
        try:
            record = parse_record(raw)
        except (ValueError, KeyError, TypeError) as exc:
            result.problems.append(f"seq {raw.get('seq')}: {exc}")
            continue
        if record.host != host:
            result.problems.append(
                f"seq {record.seq}: host is {record.host!r}, but this is the chain of {host!r}"
            )
        result.records.append(record)
    if not result.intact:
        log.warning("backup records of %s: %d problems", host, len(result.problems))
    return result


def read_file(path: Path, host: str | None = None) -> HostRecords:
    """A chain kept in a local file; the host is the file's stem unless given."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"cannot read backup records {path}: {exc}") from exc
    return parse_lines(host or path.stem, text.splitlines())


def read_folder(folder: Path) -> dict[str, HostRecords]:
    """Records fetched earlier, one `<host>.jsonl` per host (auditors working offline)."""
    if not folder.is_dir():
        raise BackupError(
            f"records folder {folder} does not exist; expected a folder of <host>.jsonl files"
        )
    return {path.stem: read_file(path) for path in sorted(folder.glob("*.jsonl"))}
