"""Append-only record chains: JSON Lines in which each record carries the digest of the one before.

The format, shared by the deploy change log, the backup records and the exporter:

- one record a line, as canonical JSON: keys sorted, no spaces, UTF-8, then a newline;
- every record has `seq` (1, 2, ...) and `prev`, the SHA-256 hex digest of the previous line's
  bytes (without its newline); the first record's `prev` is 64 zeros.

Editing a record changes its digest, so the next record's `prev` no longer matches; removing one
breaks both `seq` and `prev`. Removing records from the end leaves a shorter chain that is still
consistent: that is detected by comparing `head` (the last digest) with one kept elsewhere, such as
the exporter's last scrape or an auditor's previous report.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unops.errors import ChainError

GENESIS = "0" * 64


def canonical(record: Mapping[str, Any]) -> str:
    """The one way a record is written: sorted keys, no spaces, non-ASCII kept as UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


@dataclass
class ChainReport:
    """What a chain holds and whether it is intact; `problems` say where and what broke."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    head: str = GENESIS

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_lines(lines: Iterable[str]) -> ChainReport:
    """Read a chain's lines and check every link; never raises on bad content, reports it."""
    report = ChainReport()
    expected_prev = GENESIS
    expected_seq = 1
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip():
            report.problems.append(f"line {number}: empty line inside the chain")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.problems.append(f"line {number}: not a JSON record ({exc.msg})")
            expected_prev = digest(line)
            expected_seq += 1
            continue
        if not isinstance(record, dict):
            report.problems.append(f"line {number}: not a JSON object")
            continue
        seq = record.get("seq")
        if canonical(record) != line:
            report.problems.append(
                f"line {number} (seq {seq}): not in canonical form; the record was rewritten"
            )
        if record.get("prev") != expected_prev:
            report.problems.append(
                f"line {number} (seq {seq}): prev does not match the digest of the record before; "
                "a record before it was edited or removed"
            )
        if seq != expected_seq:
            report.problems.append(
                f"line {number}: seq is {seq!r}, expected {expected_seq}; "
                "records were removed or reordered"
            )
        report.records.append(record)
        expected_prev = digest(line)
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
    report.head = expected_prev
    return report


def verify(path: Path) -> ChainReport:
    """Verify the chain in `path`; a missing file is an empty, intact chain."""
    try:
        with path.open(encoding="utf-8") as handle:
            return verify_lines(handle)
    except FileNotFoundError:
        return ChainReport()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChainError(f"cannot read the record chain {path}: {exc}") from exc


def append(path: Path, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Append one record to the chain in `path`, under an exclusive lock, and fsync it."""
    if "seq" in payload or "prev" in payload:
        raise ChainError("a record's payload may not set 'seq' or 'prev'; the chain sets them")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        last = ""
        count = 0
        for line in handle:
            if line.strip():
                last = line.rstrip("\n")
                count += 1
        prev = digest(last) if last else GENESIS
        seq = count + 1
        if last:
            try:
                seq = int(json.loads(last)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                seq = count + 1
        record = {**payload, "seq": seq, "prev": prev}
        handle.write(canonical(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return record
