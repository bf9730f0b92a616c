"""One lab host: its overlay layer over the base root, its nspawn process, its boot and its end."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from unops.errors import LabError
from unops.estate import LabHost
from unops.lab import aptcache, base, keys, paths
from unops.lab.registries import Registry
from unops.lab.state import HostState, Proc, children
from unops.lab.system import run

log = logging.getLogger(__name__)

# Seconds a host may take from the start of nspawn to `systemctl is-system-running` = running.
BOOT_TIMEOUT = 180
# Seconds an orderly shutdown may take before the container's init is killed.
STOP_TIMEOUT = 20
# Colour codes systemd writes to the console, left out of reports.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
CA_IN_HOST = "usr/local/share/ca-certificates/unops-lab.crt"
APT_PROXY_CONF = "etc/apt/apt.conf.d/01unops-lab-proxy"


def host_dir(name: str) -> Path:
    return paths.HOSTS_DIR / name


def root_of(name: str) -> Path:
    return host_dir(name) / "root"


def console_log(name: str) -> Path:
    return paths.RUN_DIR / f"{name}.console.log"


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        return any(line.split()[4] == target for line in mounts)


def lab_mounts() -> list[Path]:
    """Mount points under HOSTS_DIR (the hosts' overlay roots), deepest first."""
    prefix = str(paths.HOSTS_DIR) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        points = [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
    return [Path(p) for p in sorted(set(points), key=len, reverse=True)]


def mount_layer(host: LabHost) -> Path:
    """Mount the host's writable layer over the base root; a layer made from an older base
    is started afresh, because overlayfs layers are only valid over the lower they were made on."""
    folder = host_dir(host.name)
    upper, work, root = folder / "upper", folder / "work", folder / "root"
    stamp = folder / "base-recipe"
    current = base.built_recipe() or ""
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() != current:
        log.warning("layer of %s was made on another base root; starting it afresh", host.name)
        unmount(root)
        shutil.rmtree(folder)
    for path in (upper, work, root):
        path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n", encoding="utf-8")
    if not is_mounted(root):
        options = f"lowerdir={paths.BASE_ROOT},upperdir={upper},workdir={work}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
    return root


def apt_proxy_config(proxy: str) -> str:
    return (
        "// unops lab: fetch packages through the lab's shared cache on the control machine\n"
        f'Acquire::http::Proxy "http://{proxy}:{aptcache.PORT}";\n'
    )


def configure_layer(host: LabHost, registries: list[Registry], ca_cert: Path, proxy: str) -> None:
    """Write the host's identity into its layer: name, hosts file, keys, trust in the lab CA,
    and the shared package cache."""
    root = root_of(host.name)
    _write(root / APT_PROXY_CONF, apt_proxy_config(proxy))
    _write(root / "etc/hostname", f"{host.name}\n")
    registry_lines = [f"{a} {r.name}" for r in registries for a in r.addresses[:1]]
    _write(
        root / "etc/hosts",
        "\n".join(
            [
                "127.0.0.1 localhost",
                "::1 localhost ip6-localhost ip6-loopback",
                f"{host.address} {host.fqdn} {host.name}",
                "# package registries, resolved on the control machine by `unops lab up`",
                *registry_lines,
            ]
        )
        + "\n",
    )
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text(encoding="ascii").strip():
        _write(machine_id, uuid.uuid4().hex + "\n")

    key_file, public = keys.host_key(host.name)
    ssh_dir = root / "etc/ssh"
    shutil.copyfile(key_file, ssh_dir / "ssh_host_ed25519_key")
    os.chmod(ssh_dir / "ssh_host_ed25519_key", 0o600)
    _write(ssh_dir / "ssh_host_ed25519_key.pub", public + "\n")
    dot_ssh = root / "root/.ssh"
    dot_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(dot_ssh / "authorized_keys", keys.login_key() + "\n")
    os.chmod(dot_ssh / "authorized_keys", 0o600)

    # Host-side clients (curl, Postfix, ldap utilities) verify lab certificates too.
    installed = root / CA_IN_HOST
    pem = ca_cert.read_bytes()
    if not installed.exists() or installed.read_bytes() != pem:
        installed.parent.mkdir(parents=True, exist_ok=True)
        installed.write_bytes(pem)
        run(["chroot", str(root), "update-ca-certificates", "--fresh"])


def start(host: LabHost, netns: str) -> tuple[Proc, Proc]:
    """Boot the host with systemd-nspawn in its namespace; (nspawn process, container init)."""
    paths.RUN_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        "systemd-nspawn",
        f"--directory={root_of(host.name)}",
        "--boot",
        # The control machine does not run systemd: no machined to register with, no unit.
        "--register=no",
        "--keep-unit",
        f"--machine={host.name}",
        f"--network-namespace-path=/run/netns/{netns}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
    ]
    log.info("booting %s at %s", host.name, host.address)
    with open(console_log(host.name), "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: the fleet outlives the command that started it.
            start_new_session=True,
        )
    nspawn = Proc.of(proc.pid)
    return nspawn, _find_leader(host.name, proc)


def _find_leader(name: str, proc: subprocess.Popen[bytes]) -> Proc:
    # nspawn's child that lives in a new PID namespace is the container's init.
    own = os.readlink("/proc/self/ns/pid")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"{name}: systemd-nspawn ended with status {proc.returncode}")
        pending = children(proc.pid)
        while pending:
            pid = pending.pop()
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != own:
                    return Proc.of(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            pending += children(pid)
        time.sleep(0.1)
    raise LabError(f"{name}: the container's init did not start within 15 s")


def wait_booted(state: HostState, timeout: float = BOOT_TIMEOUT) -> str:
    """Wait until SSH answers and systemd has finished booting; returns its system state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.nspawn is None or not state.nspawn.alive():
            raise LabError(f"{state.name} stopped while booting\n{boot_report(state.name)}")
        try:
            with socket.create_connection((state.address, 22), timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    else:
        raise LabError(
            f"{state.name}: SSH did not answer within {timeout:.0f} s\n{boot_report(state.name)}"
        )
    left = max(deadline - time.monotonic(), 5)
    result = keys.ssh(
        state.address,
        f"timeout {int(left)} systemctl is-system-running --wait",
        check=False,
        timeout=left + 10,
    )
    system = result.stdout.strip() or "unknown"
    if system in ("running", "degraded"):
        if system == "degraded":
            # Booted, but a unit failed (often one a deploy configured): say which, go on.
            failed = keys.ssh(state.address, "systemctl --failed --no-legend", check=False)
            log.warning(
                "%s booted degraded; failed units: %s",
                state.name,
                " ".join(line.split()[1] for line in failed.stdout.splitlines() if line)
                or "(none listed)",
            )
        return system
    failed = keys.ssh(state.address, "systemctl --failed --no-legend", check=False)
    raise LabError(
        f"{state.name}: systemd says {system!r}, expected 'running'; failed units:\n"
        f"{failed.stdout.strip() or '(none listed)'}\n{boot_report(state.name)}"
    )


def boot_report(name: str, lines: int = 30) -> str:
    """The end of the host's journal (read from its layer) and of its console."""
    parts = []
    journal = host_dir(name) / "upper/var/log/journal"
    if journal.is_dir():
        out = run(
            ["journalctl", f"--directory={journal}", "-n", str(lines), "--no-pager"], check=False
        )
        parts.append(f"end of {name}'s journal:\n{out.stdout.strip() or out.stderr.strip()}")
    console = console_log(name)
    if console.exists():
        text = _ANSI.sub("", console.read_text(encoding="utf-8", errors="replace"))
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        parts.append(f"end of {name}'s console ({console}):\n" + "\n".join(tail))
    return "\n".join(parts) or f"{name} left no journal and no console output"


def stop(state: HostState) -> None:
    """Shut the host down: SIGTERM to nspawn asks init for an orderly poweroff; kill on timeout."""
    if state.nspawn is not None and state.nspawn.alive():
        log.info("stopping %s (nspawn %s)", state.name, state.nspawn.pid)
        os.kill(state.nspawn.pid, signal.SIGTERM)


def wait_stopped(state: HostState, timeout: float = STOP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(state):
        _reap(state)
        time.sleep(0.2)
    for proc in (state.leader, state.nspawn):
        # The leader first: killing a PID namespace's init ends every process in it.
        if proc is not None and proc.alive():
            log.warning(
                "%s did not stop within %.0f s; killing process %s", state.name, timeout, proc.pid
            )
            os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(state):
        _reap(state)
        time.sleep(0.1)


def _running(state: HostState) -> bool:
    return any(p is not None and p.alive() for p in (state.nspawn, state.leader))


def _reap(state: HostState) -> None:
    # nspawn is our child while the process that started it still runs: collect its status.
    if state.nspawn is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(state.nspawn.pid, os.WNOHANG)


def unmount(root: Path) -> None:
    if is_mounted(root):
        log.info("unmounting %s", root)
        run(["umount", str(root)])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text, encoding="utf-8")
