"""The Debian 12 base root every lab host boots from, built once with debootstrap and cached.

Hosts never write to it: each gets an overlay layer on top (unops.lab.hosts). The base is
rebuilt only when its recipe (below) changes, and only while no host uses it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from unops.errors import LabError
from unops.lab import paths, registries

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

SUITE = "bookworm"
# What a lab host needs to boot with systemd and be managed over SSH; deploys install the rest.
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "python3",
    "ca-certificates",
    "debian-archive-keyring",
    "procps",
]
# Units that only cost boot time and memory in a rehearsal host: timers that would start apt
# or disk jobs in the middle of a test, and the console login nobody uses.
MASKED_UNITS = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "console-getty.service",
    "getty.target",
]
SSHD_CONFIG = """\
# unops lab: one pinned ed25519 host key, made on the control machine; root by key only.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""
APT_CONFIG = """\
// unops lab: packages come through the lab's shared cache on the control machine
// (unops.lab.aptcache); a host need not keep its own copy.
APT::Keep-Downloaded-Packages "false";
Binary::apt::APT::Keep-Downloaded-Packages "false";
"""
JOURNALD_CONFIG = """\
# unops lab: keep the journal on disk (readable from the control machine when a boot fails)
# and small, so that idle hosts hold little memory.
[Journal]
Storage=persistent
SystemMaxUse=32M
RuntimeMaxUse=8M
"""
# Without it, every SSH login logs that pam_env found no /etc/default/locale.
LOCALE = "LANG=C.UTF-8\n"
_STAMP = ".unops-base"


def recipe() -> str:
    """A digest of everything that shapes the base root; a change means a rebuild."""
    parts = [SUITE, *PACKAGES, *MASKED_UNITS, SSHD_CONFIG, APT_CONFIG, JOURNALD_CONFIG, LOCALE]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def built_recipe(root: Path = paths.BASE_ROOT) -> str | None:
    """The recipe the base root on disk was built from, or None if there is none."""
    stamp = root / _STAMP
    return stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None


def is_current(root: Path = paths.BASE_ROOT) -> bool:
    return built_recipe(root) == recipe()


def ensure_base(
    resolver: str, progress: Progress, in_use: bool = False, root: Path = paths.BASE_ROOT
) -> Path:
    """The base root, built now if it is missing or its recipe changed.

    A base that running hosts sit on (`in_use`) is never replaced under them: the old one is
    kept, with a warning, until the next `up` after `down`.
    """
    if is_current(root):
        return root
    if in_use and built_recipe(root) is not None:
        progress(
            f"the base root's recipe changed, but running hosts use {root}; it is rebuilt "
            "at the first `up` after `unops lab down`"
        )
        return root
    building = root.with_name(root.name + ".building")
    if building.exists():
        shutil.rmtree(building)
    building.parent.mkdir(parents=True, exist_ok=True)
    debs = paths.CACHE_DIR / "debootstrap-debs"
    debs.mkdir(parents=True, exist_ok=True)
    mirror = registries.debian_mirror()
    progress(f"building the Debian {SUITE} base root with debootstrap (about a minute)")
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        f"--cache-dir={debs}",
        SUITE,
        str(building),
        mirror,
    ]
    _stream(command, progress)
    _configure(building, resolver)
    (building / _STAMP).write_text(recipe() + "\n", encoding="utf-8")
    if root.exists():
        shutil.rmtree(root)
    building.rename(root)
    progress(f"base root ready at {root}")
    return root


def _stream(command: list[str], progress: Progress) -> None:
    # debootstrap prints one "I: ..." line per step; pass every tenth on so a long build shows
    # it is moving without flooding the terminal.
    log.info("running %s", " ".join(command))
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        for count, line in enumerate(proc.stdout):
            tail = [*tail[-19:], line.rstrip()]
            if line.startswith("I: Retrieving") or line.startswith("I: Installing"):
                continue
            if count % 10 == 0 or line.startswith("I: Base system"):
                progress(f"  debootstrap: {line.strip()}")
        status = proc.wait()
    if status != 0:
        joined = "\n".join(tail)
        raise LabError(f"debootstrap failed with status {status}; its last lines:\n{joined}")


def _configure(root: Path, resolver: str) -> None:
    # Each host gets its own host key later; the ones the package made must not be shared.
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root / "etc/ssh/sshd_config.d/unops-lab.conf", SSHD_CONFIG)
    _write(root / "etc/apt/apt.conf.d/10unops-keep-debs", APT_CONFIG)
    (root / "etc/apt/apt.conf.d/docker-clean").unlink(missing_ok=True)
    _write(root / "etc/systemd/journald.conf.d/unops-lab.conf", JOURNALD_CONFIG)
    _write(root / "etc/default/locale", LOCALE)
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)

    # The same sources as the control machine (security updates included), so both see the
    # same package versions.
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    for source in registries.APT_SOURCES:
        if source.is_file():
            shutil.copy(source, root / "etc/apt/sources.list")
        elif source.is_dir():
            for item in source.iterdir():
                if item.suffix in (".list", ".sources"):
                    shutil.copy(item, root / "etc/apt/sources.list.d" / item.name)

    # A fresh root has the control machine's resolver; the lab's own answers instead.
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    _write(resolv, f"nameserver {resolver}\noptions timeout:2 attempts:1\n")

    # An empty machine-id: each host's layer gets its own.
    _write(root / "etc/machine-id", "")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)

    systemd = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = systemd / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
