"""Reading a fixed answer from a host over SSH, with a key that can ask for nothing else.

The monitoring deploy installs the exporter's public key for the unprivileged account
unops-monitor as `restrict,from="<exporter>",command="/usr/local/lib/unops/monitor-read"`:
whatever the client asks, sshd runs that script, which answers `records` (the backup record
chain, readable through the account's group) and `queue` (the Postfix queue's size, from
`postqueue -j`) and refuses the rest. Not root, no shell, no forwarding, no pty: the least right
that works. Host keys are checked against the pinned known_hosts file.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import paramiko

from unops.exporter.config import READER_USER

# Largest answer read; a year of daily records of every kind is well under this.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str
    duration: float
    error: str = ""


def read_remote(
    address: str, port: int, key_text: str, known_hosts: str | None, what: str, budget: float
) -> Answer:
    """Ask the host's forced command for `what`; every failure is an Answer with the reason."""
    started = time.monotonic()
    client = paramiko.SSHClient()
    try:
        if known_hosts:
            client.load_host_keys(known_hosts)
        # A host whose key is not pinned is refused, never trusted on first use.
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(key_text))
        client.connect(
            address,
            port=port,
            username=READER_USER,
            pkey=key,
            timeout=budget,
            banner_timeout=budget,
            auth_timeout=budget,
            channel_timeout=budget,
            look_for_keys=False,
            allow_agent=False,
        )
        _, stdout, stderr = client.exec_command(what, timeout=budget)
        data = stdout.read(MAX_ANSWER_BYTES)
        status = stdout.channel.recv_exit_status()
        error = stderr.read(2048).decode("utf-8", "replace").strip()
    except Exception as exc:
        # Whatever the host or paramiko does wrong, the answer is missing, with the reason.
        return Answer(False, "", time.monotonic() - started, str(exc) or type(exc).__name__)
    finally:
        client.close()
    duration = time.monotonic() - started
    if status != 0:
        return Answer(False, "", duration, error or f"exit status {status}")
    return Answer(True, data.decode("utf-8", "replace"), duration)
