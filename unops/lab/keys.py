"""SSH keys of the lab: the root login key pair, each host's ed25519 host key, known_hosts.

Host keys are made here, on the control machine, before a host first boots, so that they can be
pinned at once: nothing is ever trusted on first use.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from unops.errors import LabError
from unops.estate import LabHost
from unops.lab import paths

log = logging.getLogger(__name__)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # 0600 from the moment it exists.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ensure_key_pair(path: Path, comment: str) -> str:
    """An ed25519 key pair at `path` (private, 0600) and `path`.pub; returns the public line."""
    public = path.with_name(path.name + ".pub")
    if path.exists() and public.exists():
        return public.read_text(encoding="ascii").strip()
    key = Ed25519PrivateKey.generate()
    _write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    text = f"{line.decode('ascii')} {comment}"
    public.write_text(text + "\n", encoding="ascii")
    log.info("generated SSH key %s", public)
    return text


def login_key() -> str:
    """The public line of the lab's root login key, made once."""
    return ensure_key_pair(paths.SSH_KEY, "unops-lab")


def host_key(host: str) -> tuple[Path, str]:
    """The private key file of `host`'s ed25519 host key and its public line, made once."""
    path = paths.HOST_KEYS_DIR / host / "ssh_host_ed25519_key"
    return path, ensure_key_pair(path, f"root@{host}")


def known_hosts_lines(hosts: Sequence[LabHost]) -> list[str]:
    """One known_hosts line per host: its address, short name and fqdn, then its host key."""
    lines = []
    for host in hosts:
        _, public = host_key(host.name)
        kind, blob = public.split()[:2]
        lines.append(f"{host.address},{host.name},{host.fqdn} {kind} {blob}")
    return lines


def write_known_hosts(hosts: Sequence[LabHost]) -> Path:
    paths.KNOWN_HOSTS.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "\n".join(known_hosts_lines(hosts)) + "\n"
    if paths.KNOWN_HOSTS.exists() and paths.KNOWN_HOSTS.read_text(encoding="ascii") == text:
        return paths.KNOWN_HOSTS
    # Replaced in one step: clients connecting meanwhile read the old file or the new one.
    tmp = paths.KNOWN_HOSTS.with_suffix(".tmp")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, paths.KNOWN_HOSTS)
    return paths.KNOWN_HOSTS


def ssh_command(address: str, command: str | Sequence[str] | None = None) -> list[str]:
    """The ssh command line that logs in as root with strict checking against KNOWN_HOSTS."""
    base = [
        "ssh",
        "-i",
        str(paths.SSH_KEY),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={paths.KNOWN_HOSTS}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
        f"root@{address}",
    ]
    if command is None:
        return base
    if not isinstance(command, str):
        command = shlex.join(command)
    return [*base, command]


def ssh(
    address: str, command: str | Sequence[str], *, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `command` on a lab host over SSH; with `check`, a failure raises LabError."""
    result = subprocess.run(
        ssh_command(address, command),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise LabError(
            f"`{command}` on {address} failed with status {result.returncode}:\n"
            f"stdout: {result.stdout.strip()}\nstderr: {result.stderr.strip()}"
        )
    return result
