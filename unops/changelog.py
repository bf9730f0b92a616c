"""The change log of every deploy: who ran what, when, on which hosts, and what changed.

One chained record (unops.chain) a run, in <dir>/<fleet>.jsonl; <dir> is /var/lib/unops/changes
unless UNOPS_CHANGELOG_DIR says otherwise. A removed or edited record breaks the chain, and
`unops changes` says so.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from unops import PROJECT_ROOT, chain
from unops.deploying import DeployResult
from unops.errors import UnopsError

logger = logging.getLogger(__name__)

DEFAULT_DIR = Path("/var/lib/unops/changes")
FLEETS = ("lab", "production")

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def changelog_dir() -> Path:
    return Path(os.environ.get("UNOPS_CHANGELOG_DIR") or DEFAULT_DIR)


def changelog_path(fleet: str) -> Path:
    return changelog_dir() / f"{fleet}.jsonl"


def fleet_of(inventory: str, result: DeployResult | None = None) -> str:
    """The fleet a run belongs to: named by the inventory, else by its hosts' data."""
    if inventory in FLEETS:
        return inventory
    fleets = {host.fleet for host in (result.hosts.values() if result else []) if host.fleet}
    return fleets.pop() if len(fleets) == 1 else "other"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def checkout() -> dict[str, Any]:
    """The commit of this checkout and whether it has uncommitted changes (None outside git)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def who() -> dict[str, str | None]:
    """The login user and, when the command runs under sudo, the user who ran sudo."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "sudo_user": os.environ.get("SUDO_USER")}


def record_run(
    *,
    inventory: str,
    services: Sequence[str],
    dry: bool,
    started: datetime,
    result: DeployResult | None,
    error: str | None = None,
    limit: Sequence[str] = (),
) -> dict[str, Any]:
    """Append one run to its fleet's change log and return the record as written."""
    hosts: dict[str, Any] = {}
    for name, host in (result.hosts if result else {}).items():
        hosts[name] = {
            "error": host.error,
            "changed": host.changed,
            "failed": host.failed,
            "operations": [
                {"name": op.name, "changed": op.changed, "success": op.success}
                for op in host.operations
            ],
        }
    fleet = fleet_of(inventory, result)
    payload = {
        "kind": "deploy",
        "who": who(),
        "started": started.astimezone(UTC).isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "fleet": fleet,
        "inventory": inventory,
        "checkout": checkout(),
        "services": list(services),
        "limit": list(limit),
        "dry": dry,
        "error": error,
        "changed": result.changed if result else 0,
        "failed_hosts": result.failed_hosts if result else [],
        "hosts": hosts,
    }
    path = changelog_path(fleet)
    record = chain.append(path, payload)
    logger.info("recorded run %s in %s", record["seq"], path)
    return record


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`24h`, `30m`, `7d`, `2w`, or an ISO date or time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(value.strip())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UnopsError(
            f"--since {value!r} is not a time; expected 30m, 24h, 7d, 2w, "
            "a date (2026-12-01) or a time (2026-12-01T18:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class ChangeLog:
    """One fleet's log as read: the runs that match, and whether the whole chain is intact."""

    fleet: str
    path: Path
    runs: list[dict[str, Any]]
    total: int
    problems: list[str]
    head: str

    @property
    def intact(self) -> bool:
        return not self.problems


def read(fleet: str, *, since: datetime | None = None, host: str | None = None) -> ChangeLog:
    """Verify the fleet's whole chain, then keep the runs since `since` that touched `host`."""
    path = changelog_path(fleet)
    report = chain.verify(path)
    runs = []
    for record in report.records:
        if since is not None and _started(record) < since:
            continue
        hosts = record.get("hosts") or {}
        if host is not None:
            if host not in hosts:
                continue
            record = {**record, "hosts": {host: hosts[host]}}
        runs.append(record)
    return ChangeLog(fleet, path, runs, len(report.records), report.problems, report.head)


def fleets_present() -> list[str]:
    """The fleets that have a change log in the change log folder, sorted."""
    folder = changelog_dir()
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def _started(record: dict[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(str(record.get("started")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
