"""What the exporter benchmarks share: a process's CPU and memory, a timed round, the exporter,
waiting for a server to listen and fetching its metrics as Prometheus would.

Imported by the scripts beside it (`python benchmarks/<script>.py` puts this folder on sys.path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
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


def wait_listening(url: str, what: str, seconds: float = 30.0) -> None:
    """Return once `url` answers; exit with a message naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} does not answer at {url}")


def fetch(url: str, scrape_timeout: float) -> bytes:
    """GET `url` with the scrape timeout header Prometheus sends, allowing 20 s beyond it."""
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(scrape_timeout)}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=scrape_timeout + 20) as response:
        return bytes(response.read())


def require_lab_network() -> None:
    """Exit unless the lab's bridge is up: without it, lab addresses would leave by the default
    route instead of staying on this machine."""
    from unops.lab import network

    if not network.link_exists(network.BRIDGE):
        sys.exit(f"the lab network ({network.BRIDGE}) is down: run `unops lab up` first")
