"""What `unops lab up` made, recorded in STATE_FILE so that `down` and recovery remove exactly that.

Processes are recorded with their start time (from /proc/PID/stat), so that a process id the
kernel has since given to another program is never signalled.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unops.errors import LabError
from unops.lab import paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proc:
    """A process the lab started (or a container's init), by id and kernel start time."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> Proc:
        start = start_time(pid)
        if start is None:
            raise LabError(f"process {pid} ended before the lab could record it")
        return cls(pid, start)

    def alive(self) -> bool:
        return start_time(self.pid) == self.start


@dataclass
class HostState:
    """One booted host: its namespace, host-side link, overlay mount and processes."""

    name: str
    address: str
    netns: str
    link: str
    mount: str
    nspawn: Proc | None = None
    leader: Proc | None = None


@dataclass
class LabState:
    """The whole lab: the bridge, the nftables table, the resolver, the apt cache, the hosts."""

    bridge: str | None = None
    nft_table: str | None = None
    dns: Proc | None = None
    apt_cache: Proc | None = None
    hosts: dict[str, HostState] = field(default_factory=dict)

    def save(self, path: Path = paths.STATE_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path = paths.STATE_FILE) -> LabState:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            hosts = {
                name: HostState(
                    **{
                        **entry,
                        "nspawn": _proc(entry.get("nspawn")),
                        "leader": _proc(entry.get("leader")),
                    }
                )
                for name, entry in raw.get("hosts", {}).items()
            }
            return cls(
                bridge=raw.get("bridge"),
                nft_table=raw.get("nft_table"),
                dns=_proc(raw.get("dns")),
                apt_cache=_proc(raw.get("apt_cache")),
                hosts=hosts,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise LabError(
                f"lab state {path} is unreadable ({exc}); remove it and run `unops lab up`, "
                "which cleans up what the lab left by its names"
            ) from exc


def _proc(raw: Any) -> Proc | None:
    return Proc(int(raw["pid"]), int(raw["start"])) if raw else None


def start_time(pid: int) -> int | None:
    """The kernel start time of `pid` in clock ticks, or None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    # A zombie has ended; only its parent has not collected its status yet.
    if fields[0] == "Z":
        return None
    return int(fields[19])


def children(pid: int) -> list[int]:
    """The direct children of `pid` (empty if it has ended)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(part) for part in text.split()]
