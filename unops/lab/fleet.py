"""`unops lab up`, `down` and `status`: the whole fleet, built from the lab inventory.

Everything `up` makes is recorded in STATE_FILE as it is made, so that `down` (or the recovery at
the start of the next `up`) removes exactly that; leftovers a lost state file no longer names
are found by the lab's own prefixes (namespaces `unops-*`, links `unops-*`, mounts under
HOSTS_DIR) and removed too. One lock serialises every `up` and `down` on the machine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from unops.errors import LabError
from unops.estate import Estate, LabHost, load_estate
from unops.lab import aptcache, base, ca, keys, machines, network, paths, registries
from unops.lab.state import HostState, LabState, Proc

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# IPv4 forwarding as it was before the first `up`, restored by `down`.
FORWARDING_WAS = paths.LAB_DIR / "forwarding-was"
TOOLS = ("debootstrap", "systemd-nspawn", "nft", "ip", "mount", "umount", "chroot", "ssh")


def _quiet(_: str) -> None:
    pass


@contextmanager
def _locked() -> Iterator[None]:
    paths.LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(paths.LAB_DIR / "lock", "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cannot_run_reason() -> str | None:
    """Why this machine cannot run the lab (not root, a tool missing), or None if it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, mounts, nftables); run it as root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"the lab needs {', '.join(missing)} on this machine; install them with "
            "`make host-packages` (Debian packages debootstrap, systemd-container, nftables, "
            "iproute2, openssh-client)"
        )
    return None


def check_can_run() -> None:
    """Fail with the reason when this machine cannot run the lab."""
    reason = cannot_run_reason()
    if reason:
        raise LabError(reason)


def select(estate: Estate, names: Sequence[str]) -> list[LabHost]:
    """The lab hosts named (all when none are), or an error naming the unknown ones."""
    fleet = estate.lab_hosts()
    if not names:
        return fleet
    known = {host.name: host for host in fleet}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise LabError(f"not lab hosts: {', '.join(unknown)}; the lab hosts are {', '.join(known)}")
    return [known[name] for name in dict.fromkeys(names)]


def host_running(entry: HostState) -> bool:
    return bool(entry.nspawn and entry.nspawn.alive() and entry.leader and entry.leader.alive())


def up(names: Sequence[str] = (), progress: Progress = _quiet) -> LabState:
    """Boot the named lab hosts (all by default); hosts already running are left as they are."""
    check_can_run()
    estate = load_estate()
    wanted = select(estate, names)
    lab = estate.site.lab
    with _locked():
        state = LabState.load()
        _recover(state, progress)

        in_use = any(host_running(entry) for entry in state.hosts.values())
        base.ensure_base(str(lab.bridge_address), progress, in_use=in_use)
        ca_cert = ca.ensure_ca()
        keys.login_key()
        keys.write_known_hosts(estate.lab_hosts())

        found = registries.resolve(registries.registry_names())
        network.ensure_bridge(lab.bridge_address, lab.network)
        state.bridge = network.BRIDGE
        network.enable_forwarding(FORWARDING_WAS)
        network.apply_nft(lab.network, found)
        state.nft_table = network.NFT_TABLE
        state.save()
        _ensure_services(state, str(lab.bridge_address), progress)

        starting = [host for host in wanted if not host_running(state.hosts.get(host.name, _none))]
        if not starting:
            progress(f"all {len(wanted)} hosts already running")
            return state
        progress(f"booting {len(starting)} hosts: {', '.join(h.name for h in starting)}")
        saving = threading.Lock()

        def prepare(host: LabHost) -> str | None:
            try:
                netns, link = network.ensure_host_network(
                    host.name, host.address, lab.network, lab.bridge_address
                )
                entry = HostState(host.name, str(host.address), netns, link, "")
                with saving:
                    state.hosts[host.name] = entry
                    state.save()
                entry.mount = str(machines.mount_layer(host))
                with saving:
                    state.save()
                machines.configure_layer(host, found, ca_cert, str(lab.bridge_address))
                entry.nspawn, entry.leader = machines.start(host, netns)
                with saving:
                    state.save()
            except LabError as exc:
                return f"{host.name}: {exc}"
            return None

        # A few at a time: each step is short, but the steps of many hosts overlap well.
        with ThreadPoolExecutor(max_workers=4) as pool:
            failures = [error for error in pool.map(prepare, starting) if error]
        if failures:
            raise LabError("could not start every host:\n" + "\n".join(failures))
        _wait_all(state, starting, progress)
        return state


_none = HostState("", "", "", "", "")


def _wait_all(state: LabState, hosts: list[LabHost], progress: Progress) -> None:
    started = time.monotonic()

    def wait(host: LabHost) -> str | None:
        try:
            machines.wait_booted(state.hosts[host.name])
        except LabError as exc:
            return str(exc)
        progress(f"  {host.name} is running ({time.monotonic() - started:.0f} s)")
        return None

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        failures = [error for error in pool.map(wait, hosts) if error]
    if failures:
        raise LabError(
            f"{len(failures)} of {len(hosts)} hosts did not boot:\n" + "\n\n".join(failures)
        )


# The lab's own services on the control machine: (state field, module, port, what it is).
SERVICES = [
    ("dns", "unops.lab.dns", 53, "the lab resolver"),
    ("apt_cache", "unops.lab.aptcache", aptcache.PORT, "the shared apt cache"),
]


def _ensure_services(state: LabState, listen: str, progress: Progress) -> None:
    for field, module, port, what in SERVICES:
        current: Proc | None = getattr(state, field)
        if current is not None and current.alive():
            continue
        progress(f"starting {what} on {listen}:{port}")
        setattr(state, field, _start_service(module, listen, port, what))
        state.save()


def _start_service(module: str, listen: str, port: int, what: str) -> Proc:
    paths.RUN_DIR.mkdir(parents=True, exist_ok=True)
    paths.DNS_RECORDS_DIR.mkdir(parents=True, exist_ok=True)
    logfile = paths.RUN_DIR / f"{module.rsplit('.', 1)[-1]}.log"
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--listen", listen, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Proc.of(proc.pid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(encoding="utf-8").splitlines()[-10:]
            raise LabError(f"{what} ended at start; the end of {logfile}:\n" + "\n".join(tail))
        try:
            with socket.create_connection((listen, port), timeout=1):
                return started
        except OSError:
            time.sleep(0.2)
    raise LabError(f"{what} did not answer on {listen}:{port} within 20 s; see {logfile}")


def _stop_services(state: LabState, progress: Progress) -> None:
    for field, _, _, what in SERVICES:
        current: Proc | None = getattr(state, field)
        if current is not None and current.alive():
            progress(f"stopping {what}")
            os.kill(current.pid, signal.SIGTERM)
            _wait_gone(current)
        setattr(state, field, None)
    state.save()


def _recover(state: LabState, progress: Progress) -> None:
    """Remove what an earlier lab left behind: hosts whose processes ended, and leftovers that
    no state names (after a lost state file)."""
    for name, entry in list(state.hosts.items()):
        if host_running(entry):
            continue
        progress(f"cleaning up {name}, which is no longer running")
        _remove_host(entry)
        del state.hosts[name]
        state.save()
    known_ns = {entry.netns for entry in state.hosts.values()}
    for netns in network.lab_namespaces():
        if netns not in known_ns:
            progress(f"removing stale namespace {netns}")
            network.remove_host_network(netns, "")
    known_links = {entry.link for entry in state.hosts.values()} | {network.BRIDGE}
    for link in network.lab_links():
        if link not in known_links:
            progress(f"removing stale link {link}")
            network.remove_host_network("", link)
    known_mounts = {entry.mount for entry in state.hosts.values()}
    for mount in machines.lab_mounts():
        if str(mount) not in known_mounts:
            progress(f"unmounting stale {mount}")
            machines.unmount(mount)


def _remove_host(entry: HostState) -> None:
    machines.stop(entry)
    machines.wait_stopped(entry)
    # Mounts are found under the host's own folder, whatever the state managed to record.
    folder = machines.host_dir(entry.name)
    for mount in machines.lab_mounts():
        if folder in mount.parents:
            machines.unmount(mount)
    network.remove_host_network(entry.netns, entry.link)


def down(progress: Progress = _quiet, purge: bool = False) -> None:
    """Stop every host and remove all `up` made; caches stay (and keys, unless `purge`)."""
    check_can_run()
    with _locked():
        state = LabState.load()
        entries = list(state.hosts.values())
        if entries:
            progress(f"stopping {len(entries)} hosts")
        for entry in entries:
            machines.stop(entry)
        with ThreadPoolExecutor(max_workers=max(len(entries), 1)) as pool:
            list(pool.map(machines.wait_stopped, entries))
        for entry in entries:
            _remove_host(entry)
            del state.hosts[entry.name]
            state.save()
        _stop_services(state, progress)
        _recover(state, progress)
        network.remove_bridge()
        network.remove_nft()
        network.restore_forwarding(FORWARDING_WAS)
        for folder in (paths.HOSTS_DIR, paths.RUN_DIR, paths.DNS_RECORDS_DIR.parent):
            if folder.exists():
                shutil.rmtree(folder)
        if purge:
            for folder in (paths.SSH_KEY.parent, paths.CA_CERT.parent):
                if folder.exists():
                    shutil.rmtree(folder)
        paths.STATE_FILE.unlink(missing_ok=True)
        progress("the lab is down")


def _wait_gone(proc: Proc, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while proc.alive() and time.monotonic() < deadline:
        with suppress(ChildProcessError):
            os.waitpid(proc.pid, os.WNOHANG)
        time.sleep(0.1)
    if proc.alive():
        os.kill(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    # running: the container is up; stopped: not booted (or removed by down); dead: its
    # processes ended without `down` (the next `up` cleans up and boots it again).
    state: str
    system: str  # `systemctl is-system-running` inside, or "-" when the host is not up
    failed_units: list[str]


def status(estate: Estate | None = None) -> list[HostStatus]:
    """Each lab host, its address, whether it runs, and its systemd state (asked over SSH)."""
    estate = estate or load_estate()
    state = LabState.load()

    def one(host: LabHost) -> HostStatus:
        entry = state.hosts.get(host.name)
        if entry is None:
            return HostStatus(host.name, str(host.address), "stopped", "-", [])
        if not host_running(entry):
            return HostStatus(host.name, str(host.address), "dead", "-", [])
        try:
            # The failed units come along, so that 'degraded' says what to look at.
            answer = keys.ssh(
                str(host.address),
                "systemctl is-system-running; systemctl --failed --plain --no-legend",
                check=False,
                timeout=15,
            )
        except subprocess.TimeoutExpired:
            return HostStatus(host.name, str(host.address), "running", "unreachable", [])
        lines = answer.stdout.splitlines()
        if not lines:
            return HostStatus(host.name, str(host.address), "running", "unreachable", [])
        failed = [line.split()[0] for line in lines[1:] if line.strip()]
        return HostStatus(host.name, str(host.address), "running", lines[0].strip(), failed)

    hosts = estate.lab_hosts()
    with ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
        return list(pool.map(one, hosts))


def is_up(estate: Estate | None = None) -> bool:
    """Every lab host and the lab's services run (a quick check of the state file; no SSH)."""
    state = LabState.load()
    fleet = (estate or load_estate()).lab_hosts()
    services: list[Proc | None] = [getattr(state, field) for field, *_ in SERVICES]
    return all(p is not None and p.alive() for p in services) and all(
        host_running(state.hosts.get(h.name, _none)) for h in fleet
    )
