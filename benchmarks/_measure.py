"""What the exporter benchmarks share: a process's CPU and memory, a timed round, the exporter.

Imported by the scripts beside it (`python benchmarks/<script>.py` puts this folder on sys.path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process `pid` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    """The resident memory of the process `pid` now, in MiB (0 when /proc does not say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pid: int, round_: Callable[[], object]) -> tuple[float, float, float]:
    """Run `round_` once: wall seconds, CPU seconds `pid` spent meanwhile, its RSS after (MiB)."""
    cpu = cpu_seconds(pid)
    started = time.monotonic()
    round_()
    return time.monotonic() - started, cpu_seconds(pid) - cpu, rss_mib(pid)


def start_exporter(
    config: Path | str, port: int, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `unops.exporter serve` (no mail flow) on 127.0.0.1:`port` with the config file."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unops.exporter",
            "serve",
            "--no-mail-flow",
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            str(config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
