"""Reading estate files into records, turning every fault into a Problem with its file and line.

TOML holds structure, CSV the long tables. Neither parser reports where a value stood, so the
line of a fault is found again in the file's text: a CSV row's line is counted while reading, a
TOML key's line is searched for below the header of its table.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from unops.errors import Problem

M = TypeVar("M", bound=BaseModel)


@dataclass
class Reader:
    """Collects the problems of every file read, so that all of them are reported at once."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    # Per file, the keys (first field) of records that were present but invalid: references to
    # them are not reported again as unknown, since the record's own problem already is.
    rejected: dict[str, set[str]] = field(default_factory=dict)

    def problem(self, name: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.root / name, message, line))

    def was_rejected(self, name: str, key: object) -> bool:
        return str(key) in self.rejected.get(name, set())

    def _reject(self, name: str, model: type[BaseModel], data: Any) -> None:
        key = next(iter(model.model_fields))
        if isinstance(data, dict) and key in data:
            self.rejected.setdefault(name, set()).add(str(data[key]).strip())

    def toml(self, name: str) -> TomlFile | None:
        path = self.root / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problem(name, "file is missing; every estate file is required")
            return None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # NB: Python 3.11's tomllib gives the position only inside the message.
            at = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            line = int(at.group(1)) if at else getattr(exc, "lineno", None)
            message = str(exc).replace(at.group(0), "").strip() if at else str(exc)
            self.problem(name, f"is not valid TOML: {message}", line)
            return None
        return TomlFile(self, name, text.splitlines(), data)

    def csv_rows(
        self, name: str, model: type[M], list_columns: Sequence[str] = ()
    ) -> list[tuple[M, int]]:
        """Read a CSV table into records with their lines; `list_columns` hold space-separated
        values."""
        path = self.root / name
        try:
            handle = path.open(encoding="utf-8", newline="")
        except FileNotFoundError:
            self.problem(name, "file is missing; every estate file is required")
            return []
        records: list[tuple[M, int]] = []
        with handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            expected = list(model.model_fields)
            if header is None:
                self.problem(name, f"is empty; expected a header row: {','.join(expected)}", 1)
                return []
            unknown = [column for column in header if column not in expected]
            if unknown:
                self.problem(
                    name,
                    f"unknown column {', '.join(repr(c) for c in unknown)}; "
                    f"accepted columns: {', '.join(expected)}",
                    1,
                )
                return []
            for row in rows:
                line = rows.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    self.problem(
                        name, f"row has {len(row)} cells, the header has {len(header)}", line
                    )
                    continue
                data: dict[str, Any] = {}
                for column, cell in zip(header, row, strict=True):
                    cell = cell.strip()
                    if column in list_columns:
                        data[column] = cell.split()
                    elif cell != "":
                        data[column] = cell
                record = self.validate(name, model, data, line=line)
                if record is not None:
                    records.append((record, line))
                else:
                    self._reject(name, model, data)
        return records

    def validate(
        self,
        name: str,
        model: type[M],
        data: Any,
        line: int | None = None,
        locate: TomlLocator | None = None,
    ) -> M | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                at = locate(error["loc"]) if locate else line
                self.problem(name, describe(where, error), at)
            return None


def describe(where: str, error: Any) -> str:
    """A pydantic error in the estate's words: the field, what is wrong, the value given."""
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key '{where}' (value {value!r}); remove it or check its spelling"
    if kind == "missing":
        return f"'{where}' is required and missing"
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        message = f"must be one of {ctx['expected']}"
    return f"'{where}' {message[0].lower()}{message[1:]}; got {value!r}"


TomlLocator = Any


@dataclass
class TomlFile:
    """A parsed TOML file that still knows its text, to point at the line of a fault."""

    reader: Reader
    name: str
    lines: list[str]
    data: dict[str, Any]

    def table(self, key: str) -> Any:
        return self.data.get(key)

    def header_lines(self, key: str) -> list[int]:
        """Line numbers of each `[[key]]` header, in order."""
        pattern = re.compile(rf"^\s*\[\[\s*{re.escape(key)}\s*\]\]")
        return [number for number, text in enumerate(self.lines, 1) if pattern.match(text)]

    def key_line(self, start: int, key: str) -> int:
        """The line of `key = ...` at or below line `start`, before the next header."""
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, len(self.lines) + 1):
            text = self.lines[number - 1]
            if number > start and text.lstrip().startswith("["):
                break
            if pattern.match(text):
                return number
        return start

    def validate_document(self, model: type[M]) -> M | None:
        """Validate the whole file as one record whose keys are its tables."""

        def locate(loc: tuple[Any, ...]) -> int:
            if not loc:
                return 1
            header = re.compile(rf"^\s*\[\s*{re.escape(str(loc[0]))}\s*\]")
            start = next((n for n, t in enumerate(self.lines, 1) if header.match(t)), 1)
            return self.key_line(start, str(loc[-1])) if len(loc) > 1 else start

        return self.reader.validate(self.name, model, self.data, locate=locate)

    def validate(self, key: str, model: type[M]) -> M | None:
        """Validate the table `[key]` (and its sub-tables) as one record."""
        header = re.compile(rf"^\s*\[\s*{re.escape(key)}[\].]")
        first = next((n for n, t in enumerate(self.lines, 1) if header.match(t)), 1)

        def locate(loc: tuple[Any, ...]) -> int:
            if len(loc) >= 2:
                sub = re.compile(rf"^\s*\[\s*{re.escape(key)}\.{re.escape(str(loc[0]))}\s*\]")
                start = next((n for n, t in enumerate(self.lines, 1) if sub.match(t)), first)
                return self.key_line(start, str(loc[-1]))
            return self.key_line(first, str(loc[0])) if loc else first

        if key not in self.data:
            self.reader.problem(self.name, f"table [{key}] is required and missing")
            return None
        return self.reader.validate(self.name, model, self.data[key], locate=locate)

    def validate_all(self, key: str, model: type[M]) -> Iterator[tuple[M, int]]:
        """Validate each `[[key]]` entry; yields each valid record with its header's line."""
        entries = self.data.get(key, [])
        if not isinstance(entries, list):
            self.reader.problem(self.name, f"'{key}' must be a list of [[{key}]] tables")
            return
        headers = self.header_lines(key)
        for index, entry in enumerate(entries):
            start = headers[index] if index < len(headers) else 1

            def locate(loc: tuple[Any, ...], start: int = start) -> int:
                return self.key_line(start, str(loc[0])) if loc else start

            record = self.reader.validate(self.name, model, entry, locate=locate)
            if record is not None:
                yield record, start
            else:
                self.reader._reject(self.name, model, entry)
