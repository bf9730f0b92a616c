"""The end of a full lab run: recovery after a crash, then `down`, and nothing is left behind.

This file runs last (conftest orders it so) and does not bring the lab back: run it only as part
of the whole suite, never while others use the lab.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from unops.lab import fleet, machines, network, paths
from unops.lab.state import LabState

pytestmark = pytest.mark.lab


def _lines(command: list[str]) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


def _lab_processes() -> list[str]:
    """Command lines of running processes that belong to the lab (nspawn, its services)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                line = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(paths.HOSTS_DIR) in line or "unops.lab.dns" in line or "unops.lab.aptcache" in line:
            found.append(f"{entry}: {line}")
    return found


def test_up_recovers_after_a_crash_that_lost_the_state(lab):
    """With every lab process killed and the state lost, `up` clears the leftovers and boots."""
    state = LabState.load()
    victims = [p for h in state.hosts.values() for p in (h.leader, h.nspawn) if p]
    victims += [p for p in (state.dns, state.apt_cache) if p]
    for proc in victims:
        if proc.alive():
            os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(p.alive() for p in victims) and time.monotonic() < deadline:
        time.sleep(0.2)
    paths.STATE_FILE.unlink()
    assert any(n.startswith(network.NETNS_PREFIX) for n in _lines(["ip", "netns", "list"]))
    assert machines.lab_mounts(), "the crash should have left the overlay mounts behind"

    fleet.up()

    assert fleet.is_up()
    # Layers survive a crash, so a unit a deploy left failed may make a host 'degraded'; what
    # matters here is that every host booted again.
    for host in lab.hosts:
        system = lab.ssh(host, "systemctl is-system-running", check=False).stdout.strip()
        assert system in ("running", "degraded"), f"{host.name} is {system!r} after recovery"


def test_down_leaves_nothing_behind(lab):
    """After `down`: no lab namespace, link, mount, process or nftables table remains, and IPv4
    forwarding is back to what it was before the lab."""
    forwarding_before_lab = fleet.FORWARDING_WAS.read_text().strip()
    fleet.down()

    assert [n for n in _lines(["ip", "netns", "list"]) if n.startswith(network.NETNS_PREFIX)] == []
    links = [line for line in _lines(["ip", "-o", "link"]) if "unops-" in line]
    assert links == []
    mounts = [line for line in _lines(["mount"]) if str(paths.LAB_DIR) in line]
    assert mounts == []
    assert not any(str(paths.BASE_ROOT) in line for line in _lines(["mount"]))
    assert _lab_processes() == []
    tables = _lines(["nft", "list", "tables"])
    assert f"table inet {network.NFT_TABLE}" not in tables
    assert not paths.STATE_FILE.exists()
    assert not paths.HOSTS_DIR.exists()
    assert network.FORWARDING.read_text().strip() == forwarding_before_lab
