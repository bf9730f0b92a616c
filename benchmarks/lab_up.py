"""Measure the lab: `up` from cold (no cache) and warm, and the idle fleet's memory.

    .venv/bin/python benchmarks/lab_up.py                 # memory of the running fleet only
    .venv/bin/python benchmarks/lab_up.py --warm          # down, then a timed up (cache kept)
    .venv/bin/python benchmarks/lab_up.py --cold          # down, caches removed, a timed up

--warm and --cold take the lab down first: run them only when no one else is using it.
Memory is the proportional set size (PSS) of every process of each host (nspawn and the
container's whole process tree), plus what each host keeps in its tmpfs mounts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from unops.lab import fleet, paths
from unops.lab.state import LabState


def _ppids() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree[ppid].append(int(entry))
    return tree


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tmpfs_kib(leader: int) -> int:
    # tmpfs inside the container (/run, /dev/shm, /tmp if mounted so) holds memory too.
    used = 0
    try:
        mounts = Path(f"/proc/{leader}/mounts").read_text().splitlines()
    except OSError:
        return 0
    seen = set()
    for line in mounts:
        fields = line.split()
        if fields[2] != "tmpfs" or fields[1] in seen:
            continue
        seen.add(fields[1])
        try:
            st = os.statvfs(f"/proc/{leader}/root{fields[1]}")
        except OSError:
            continue
        used += (st.f_blocks - st.f_bfree) * st.f_frsize // 1024
    return used


def fleet_memory() -> dict[str, tuple[int, int, int]]:
    """Per host: (PSS KiB of its processes, tmpfs KiB, number of processes)."""
    state = LabState.load()
    tree = _ppids()
    result = {}
    for name, host in sorted(state.hosts.items()):
        if host.nspawn is None or host.leader is None or not host.nspawn.alive():
            continue
        pids, pending = [], [host.nspawn.pid]
        while pending:
            pid = pending.pop()
            pids.append(pid)
            pending += tree.get(pid, [])
        result[name] = (sum(_pss_kib(p) for p in pids), _tmpfs_kib(host.leader.pid), len(pids))
    return result


def timed_up(cold: bool) -> float:
    fleet.down(progress=print)
    if cold:
        for path in (paths.BASE_ROOT, paths.CACHE_DIR / "debootstrap-debs", paths.APT_ARCHIVES):
            if path.exists():
                shutil.rmtree(path)
    started = time.monotonic()
    fleet.up(progress=print)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--warm", action="store_true", help="down, then time an up (cache kept)")
    group.add_argument("--cold", action="store_true", help="down, remove caches, time an up")
    parser.add_argument(
        "--settle", type=float, default=30, help="seconds to let the fleet idle before measuring"
    )
    args = parser.parse_args()
    if args.warm or args.cold:
        seconds = timed_up(cold=args.cold)
        print(f"lab up ({'cold, no cache' if args.cold else 'warm'}): {seconds:.1f} s")
        time.sleep(args.settle)
    if not fleet.is_up():
        print("the lab is not up; run `unops lab up` first", file=sys.stderr)
        return 1
    memory = fleet_memory()
    print(f"{'host':<12} {'PSS MiB':>8} {'tmpfs MiB':>10} {'procs':>6}")
    for name, (pss, tmpfs, count) in memory.items():
        print(f"{name:<12} {pss / 1024:>8.1f} {tmpfs / 1024:>10.1f} {count:>6}")
    total = sum(pss + tmpfs for pss, tmpfs, _ in memory.values())
    print(f"idle fleet memory: {total / 1024:.0f} MiB for {len(memory)} hosts (aim: under 3072)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
