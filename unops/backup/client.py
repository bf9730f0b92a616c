"""The control machine's side of backups: read a host's records, restore, and rehearse a restore.

The work happens on the host, by its runner (`backup-run`), so that restored data never crosses
the network; this module asks for it over SSH (`unops.remote`) and reads the record it leaves.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from unops.backup import plan, records
from unops.errors import BackupError
from unops.estate import Estate, load_estate
from unops.inventory import Fleet
from unops.remote import run

log = logging.getLogger(__name__)

# Longest a restore or a drill may run on the host before the control machine gives up.
RESTORE_TIMEOUT = 6 * 3600.0
# A host whose last good backup is older than this is overdue (a day plus the timers' spread).
OVERDUE_AFTER = dt.timedelta(hours=26)


def raw_records(host: str, fleet: Fleet = "lab") -> str:
    """The text of the host's record chain, exactly as it is on the host ("" if none yet)."""
    done = run(host, ["cat", "--", plan.RECORDS_FILE], fleet)
    if not done.ok and "No such file" not in done.stderr:
        raise BackupError(f"cannot read {plan.RECORDS_FILE} on {host}: {done.stderr.strip()}")
    return done.stdout


def fetch_records(host: str, fleet: Fleet = "lab") -> records.HostRecords:
    """The host's record chain as it is now, verified."""
    return records.parse_lines(host, raw_records(host, fleet).splitlines())


def _runner_record(host: str, args: list[str], fleet: Fleet) -> records.BackupRecord:
    done = run(host, [plan.RUNNER, *args], fleet, timeout=RESTORE_TIMEOUT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackupError(f"{plan.RUNNER} {args[0]} on {host} left no record: {error}")
    return records.parse_record(json.loads(lines[-1]))


def restore(
    host: str,
    path: str,
    target: str,
    *,
    snapshot: str = "latest",
    in_place: bool = False,
    fleet: Fleet = "lab",
) -> records.BackupRecord:
    """Restore `path` from `snapshot` into `target` on the host; refused over live data."""
    if not path.startswith("/") or not target.startswith("/"):
        raise BackupError(
            f"--path {path!r} and --to {target!r} must be absolute paths on {host}, "
            "such as --path /var/vmail/no.missions.example/ana --to /var/tmp/restore-ana"
        )
    args = ["restore", "--path", path, "--to", target, "--snapshot", snapshot]
    if in_place:
        args.append("--in-place")
    return _runner_record(host, args, fleet)


def drill(host: str, fleet: Fleet = "lab") -> records.BackupRecord:
    """Restore the latest snapshot to scratch on the host, compare it with the source, record it."""
    return _runner_record(host, ["drill"], fleet)


def run_now(host: str, action: str = "daily", fleet: Fleet = "lab") -> records.BackupRecord:
    """Run a backup (`daily`: backup and forget) or a `check` now, as the timers would."""
    if action not in ("daily", "backup", "forget", "check"):
        raise BackupError(f"action {action!r} is not one of daily, backup, forget, check")
    return _runner_record(host, [action], fleet)


def check(host: str, subset: str | None = None, fleet: Fleet = "lab") -> records.BackupRecord:
    """Run `restic check` on the host reading `subset` of the data ("n/t"; default today's)."""
    args = ["check"]
    if subset is not None:
        parts = subset.split("/")
        if (
            len(parts) != 2
            or not all(p.isdigit() for p in parts)
            or not 0 < int(parts[0]) <= int(parts[1])
        ):
            raise BackupError(f"subset {subset!r} must be n/t with 1 <= n <= t, such as 3/7")
        args += ["--subset", subset]
    return _runner_record(host, args, fleet)


@dataclass(frozen=True)
class HostStatus:
    """One host's backups now: the latest of each kind, and what is wrong, in plain words."""

    host: str
    chain: records.HostRecords
    last_backup: records.BackupRecord | None
    last_good_backup: records.BackupRecord | None
    last_check: records.BackupRecord | None
    last_drill: records.BackupRecord | None
    findings: list[str]

    @property
    def ok(self) -> bool:
        return not self.findings


def _latest(
    chain: records.HostRecords, kind: str, ok_only: bool = False
) -> records.BackupRecord | None:
    found = [r for r in chain.records if r.kind == kind and (r.ok or not ok_only)]
    return found[-1] if found else None


def status_of(chain: records.HostRecords, now: dt.datetime) -> HostStatus:
    """Judge one host's chain at `now`: chain intact, a good backup within a day, checks passing."""
    host = chain.host
    findings = [
        f"record chain broken: {problem} (auditor: investigate)" for problem in chain.problems
    ]
    last = _latest(chain, "backup")
    good = _latest(chain, "backup", ok_only=True)
    check = _latest(chain, "check")
    drill_record = _latest(chain, "drill")
    if good is None:
        findings.append(
            f"no successful backup recorded on {host}; expected one daily (ops: run "
            f"`unops backup run {host}` and read the record)"
        )
    elif now - good.time > OVERDUE_AFTER:
        findings.append(
            f"last successful backup {good.time:%Y-%m-%d %H:%M}Z is older than "
            f"{OVERDUE_AFTER.total_seconds() / 3600:.0f} h (ops: check "
            f"unops-backup.timer on {host})"
        )
    if last is not None and not last.ok:
        findings.append(f"last backup failed (exit {last.exit_code}): {last.detail} (ops)")
    if check is not None and not check.ok:
        findings.append(f"last verification failed: {check.detail} (ops: repair the repository)")
    if drill_record is not None and not drill_record.ok:
        findings.append(f"last restore drill failed: {drill_record.detail} (ops)")
    return HostStatus(host, chain, last, good, check, drill_record, findings)


def status(
    hosts: list[str] | None = None,
    fleet: Fleet = "lab",
    estate: Estate | None = None,
    now: dt.datetime | None = None,
) -> list[HostStatus]:
    """The status of the backed-up hosts (all of `fleet`, or those named)."""
    estate = estate or load_estate()
    known = plan.clients(estate, fleet)
    for name in hosts or []:
        if name not in known:
            raise BackupError(
                f"host {name!r} is not backed up in the {fleet} fleet; "
                f"backed-up hosts: {', '.join(known)}"
            )
    moment = now or dt.datetime.now(dt.UTC)
    return [status_of(fetch_records(name, fleet), moment) for name in hosts or known]
