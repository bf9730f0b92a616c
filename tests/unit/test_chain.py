"""The record chain: appended records verify, and every kind of tampering is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unops import chain
from unops.errors import ChainError


def _chain(tmp_path: Path, count: int = 4) -> Path:
    path = tmp_path / "records.jsonl"
    for n in range(count):
        chain.append(path, {"kind": "backup", "n": n, "note": "café"})
    return path


def test_appended_records_form_an_intact_chain(tmp_path: Path) -> None:
    """Records appended one by one verify as intact, numbered from 1, linked to each other."""
    path = _chain(tmp_path)
    report = chain.verify(path)
    assert report.intact, report.problems
    assert [r["seq"] for r in report.records] == [1, 2, 3, 4]
    assert report.records[0]["prev"] == chain.GENESIS
    lines = path.read_text(encoding="utf-8").splitlines()
    assert report.records[1]["prev"] == chain.digest(lines[0])
    assert report.head == chain.digest(lines[-1])


def test_edited_record_is_detected(tmp_path: Path) -> None:
    """Changing a value in a middle record breaks the link from the record after it."""
    path = _chain(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[1])
    record["n"] = 99
    lines[1] = chain.canonical(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = chain.verify(path)
    assert not report.intact
    assert any("seq 3" in p and "prev does not match" in p for p in report.problems)


def test_removed_record_is_detected(tmp_path: Path) -> None:
    """Deleting a middle record breaks both the sequence and the digest link."""
    path = _chain(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = chain.verify(path).problems
    assert any("seq is 3, expected 2" in p for p in problems)
    assert any("prev does not match" in p for p in problems)


def test_rewritten_formatting_is_detected(tmp_path: Path) -> None:
    """A record re-serialised with other spacing is reported even if its values are the same."""
    path = _chain(tmp_path, 1)
    record = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(record, indent=None) + "\n", encoding="utf-8")
    assert any("canonical" in p for p in chain.verify(path).problems)


def test_missing_chain_is_empty_and_intact(tmp_path: Path) -> None:
    """A host that never ran has no records: an empty chain, not an error."""
    report = chain.verify(tmp_path / "none.jsonl")
    assert report.intact and report.records == [] and report.head == chain.GENESIS


def test_payload_cannot_forge_the_links(tmp_path: Path) -> None:
    """A caller cannot set seq or prev itself."""
    with pytest.raises(ChainError, match="may not set"):
        chain.append(tmp_path / "r.jsonl", {"seq": 7})
