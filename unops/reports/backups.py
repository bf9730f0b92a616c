"""The backup report: per host and day, what was backed up, verified and rehearsed.

The report is built from the hosts' record chains (fetched, or a local folder of them) and says
first what needs someone: gaps (a day without a successful backup), failures, and any break in a
record chain, each in plain words with who acts. Rows and findings come in a stable order, so
two reports of the same records are identical and can be diffed; `unops.reports.render` writes
it as HTML, CSV or PDF.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unops.backup.records import BackupRecord, HostRecords
from unops.errors import BackupError

# Who acts on each kind of finding (the report's readers look for their own name).
OPS = "ops engineer"
AUDITOR = "auditor"
# Longest period one report covers: a year of days per host stays readable.
MAX_DAYS = 366


@dataclass(frozen=True)
class Finding:
    """Something that needs someone: what was expected, what happened, and who acts."""

    host: str
    day: dt.date | None
    kind: str  # "gap", "failure", "chain"
    expected: str
    happened: str
    who: str

    @property
    def text(self) -> str:
        when = f" on {self.day.isoformat()}" if self.day else ""
        return f"{self.host}{when}: expected {self.expected}; {self.happened}. {self.who} acts."


@dataclass(frozen=True)
class DayRow:
    """One host on one day."""

    host: str
    day: dt.date
    status: str  # "ok", "failed" (a backup failed, none succeeded) or "gap" (none ran)
    snapshot: str | None
    bytes: int | None
    files: int | None
    duration_seconds: float | None
    backups: int
    check: str  # "ok", "failed" or "none"
    check_detail: str
    drill: str  # "ok", "failed" or "none"
    drill_detail: str
    findings: tuple[Finding, ...] = ()

    @property
    def needs_action(self) -> bool:
        return bool(self.findings)


@dataclass(frozen=True)
class ChainSummary:
    host: str
    records: int
    intact: bool
    head: str
    problems: tuple[str, ...]
    last_seq: int = 0


@dataclass
class BackupReport:
    start: dt.date
    end: dt.date
    rows: list[DayRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    chains: list[ChainSummary] = field(default_factory=list)

    @property
    def days(self) -> list[dt.date]:
        count = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=n) for n in range(count)]

    @property
    def hosts(self) -> list[str]:
        return [chain.host for chain in self.chains]

    @property
    def gaps(self) -> int:
        return sum(1 for f in self.findings if f.kind == "gap")

    @property
    def failures(self) -> int:
        return sum(1 for f in self.findings if f.kind == "failure")

    @property
    def chains_intact(self) -> bool:
        return all(chain.intact for chain in self.chains)

    def heads(self) -> dict[str, dict[str, int | str]]:
        """Each chain's last seq and head digest, for the next report's `previous_heads`."""
        return {c.host: {"seq": c.last_seq, "head": c.head} for c in self.chains}


def _last(found: list[BackupRecord]) -> BackupRecord | None:
    return found[-1] if found else None


def _day_row(host: str, day: dt.date, today: list[BackupRecord]) -> DayRow:
    backups = [r for r in today if r.kind == "backup"]
    good = [r for r in backups if r.ok]
    checks = [r for r in today if r.kind == "check"]
    drills = [r for r in today if r.kind == "drill"]
    findings: list[Finding] = []

    if good:
        status, shown = "ok", good[-1]
    elif backups:
        status, shown = "failed", backups[-1]
        findings.append(
            Finding(
                host,
                day,
                "gap",
                "a successful daily backup",
                f"{len(backups)} backup run(s) failed, the last with exit code "
                f"{shown.exit_code}: {shown.detail or 'no detail'}",
                OPS,
            )
        )
    else:
        status, shown = "gap", None
        findings.append(
            Finding(
                host,
                day,
                "gap",
                "a successful daily backup",
                "no backup ran (check unops-backup.timer and the host's clock)",
                OPS,
            )
        )

    check, drill = _last(checks), _last(drills)
    for record, what in ((check, "verification"), (drill, "restore drill")):
        if record is not None and not record.ok:
            findings.append(
                Finding(
                    host,
                    day,
                    "failure",
                    f"a passing {what}",
                    f"the {what} failed (exit code {record.exit_code}): "
                    f"{record.detail or 'no detail'}",
                    OPS,
                )
            )
    return DayRow(
        host=host,
        day=day,
        status=status,
        snapshot=shown.snapshot if shown else None,
        bytes=shown.bytes if shown else None,
        files=shown.files if shown else None,
        duration_seconds=shown.duration_seconds if shown else None,
        backups=len(backups),
        check="none" if check is None else check.result,
        check_detail=check.detail if check else "",
        drill="none" if drill is None else drill.result,
        drill_detail=drill.detail if drill else "",
        findings=tuple(findings),
    )


def _lost_head(chain: HostRecords, previous: Mapping[str, Any] | None) -> list[str]:
    if not previous:
        return []
    seq, head = previous.get("seq"), previous.get("head")
    if not isinstance(seq, int) or seq == 0:
        return []
    if seq not in chain.digests:
        return [
            f"an earlier report saw record seq {seq} (digest {head}), but the chain now ends at "
            f"seq {chain.last_seq}; records were removed from its end"
        ]
    if chain.digests[seq] != head:
        return [
            f"record seq {seq} no longer has the digest an earlier report saw ({head}); "
            "the chain was rewritten"
        ]
    return []


def _coverage(host: str, found: list[BackupRecord], days: list[dt.date]) -> list[Finding]:
    """Each full week (Monday to Sunday) in the period must have read every share of the data."""
    findings = []
    for monday in (d for d in days if d.weekday() == 0 and d + dt.timedelta(days=6) <= days[-1]):
        week = {monday + dt.timedelta(days=n) for n in range(7)}
        shares: dict[int, set[int]] = {}
        for record in found:
            part, _, total = record.detail.partition("/")
            counted = record.kind == "check" and record.ok and record.day in week
            if counted and part.isdigit() and total.isdigit():
                shares.setdefault(int(total), set()).add(int(part))
        if any(parts >= set(range(1, total + 1)) for total, parts in shares.items()):
            continue
        read = ", ".join(f"{sorted(p)} of {t}" for t, p in sorted(shares.items())) or "none"
        findings.append(
            Finding(
                host,
                monday,
                "failure",
                "verification reading all the data in the week from this Monday",
                f"the passing checks read only shares {read}; part of the data went unread "
                "(check unops-backup-check.timer)",
                OPS,
            )
        )
    return findings


def build(
    chains: Mapping[str, HostRecords],
    hosts: Sequence[str],
    start: dt.date,
    end: dt.date,
    previous_heads: Mapping[str, Mapping[str, Any]] | None = None,
) -> BackupReport:
    """The report of `hosts` from `start` to `end` (both included, UTC days).

    A host in `hosts` without a chain in `chains` has a gap every day; a chain of a host not
    in `hosts` is reported too, so that nothing fetched is silently left out. With
    `previous_heads` (an earlier report's `heads()`), a chain that no longer holds the head an
    earlier report saw is broken: records were cut off its end or rewritten.
    """
    if end < start:
        raise BackupError(f"--to {end} is before --from {start}; give the earlier date first")
    if (end - start).days + 1 > MAX_DAYS:
        raise BackupError(
            f"the period {start} to {end} is longer than {MAX_DAYS} days; split it into years"
        )
    report = BackupReport(start=start, end=end)
    names = list(dict.fromkeys([*hosts, *sorted(chains)]))
    for host in names:
        chain = chains.get(host, HostRecords(host=host))
        problems = list(chain.problems) + _lost_head(chain, (previous_heads or {}).get(host))
        report.chains.append(
            ChainSummary(
                host, len(chain.records), not problems, chain.head, tuple(problems), chain.last_seq
            )
        )
        for problem in problems:
            report.findings.append(
                Finding(
                    host,
                    None,
                    "chain",
                    "an intact record chain",
                    f"the chain is broken: {problem}; records were edited, removed or "
                    "reordered, so what this report shows for the host cannot be trusted",
                    AUDITOR,
                )
            )
        by_day: dict[dt.date, list[BackupRecord]] = {}
        for record in chain.records:
            by_day.setdefault(record.day, []).append(record)
        for day in report.days:
            row = _day_row(host, day, by_day.get(day, []))
            report.rows.append(row)
            report.findings.extend(row.findings)
        report.findings.extend(_coverage(host, chain.records, report.days))
    # Gaps and failures first; then the rest, both by host and day: a stable order.
    order = {"chain": 0, "gap": 1, "failure": 2}
    report.findings.sort(key=lambda f: (order[f.kind], names.index(f.host), f.day or dt.date.min))
    report.rows.sort(key=lambda r: (not r.needs_action, names.index(r.host), r.day))
    return report
