"""Run a command on a host of an inventory over SSH, with the inventory's pinned host keys.

A small helper for the CLI and the lab tests (pyinfra is for converging; this is for asking).
The connection settings come from the same inventory data pyinfra uses (`unops.inventory`):
address, user, key and the pinned known_hosts file; a host whose key is not pinned is refused.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paramiko

from unops.errors import RemoteError
from unops.inventory import Fleet, groups

log = logging.getLogger(__name__)

__all__ = ["CommandResult", "RemoteError", "connect", "host_data", "run"]

# Seconds to wait for the TCP connection and the SSH handshake (not for the command itself).
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def host_data(name: str, fleet: Fleet = "lab") -> dict[str, Any]:
    """The inventory data of host `name` in `fleet`; RemoteError names the known hosts."""
    known: dict[str, dict[str, Any]] = {}
    for entries in groups(fleet).values():
        for host, data in entries:
            known.setdefault(host, data)
    if name not in known:
        raise RemoteError(
            f"host {name!r} is not in the {fleet} inventory; known: {', '.join(sorted(known))}"
        )
    return known[name]


def connect(name: str, fleet: Fleet = "lab") -> paramiko.SSHClient:
    """An SSH connection to `name`, refusing any host key that the inventory does not pin."""
    data = host_data(name, fleet)
    client = paramiko.SSHClient()
    client.load_host_keys(str(data["ssh_known_hosts_file"]))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            str(data["ssh_hostname"]),
            username=str(data.get("ssh_user", "root")),
            key_filename=data.get("ssh_key"),
            timeout=CONNECT_TIMEOUT,
            banner_timeout=CONNECT_TIMEOUT,
            auth_timeout=CONNECT_TIMEOUT,
            allow_agent=data.get("ssh_key") is None,
            look_for_keys=data.get("ssh_key") is None,
        )
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise RemoteError(f"cannot reach {name} at {data['ssh_hostname']} over SSH: {exc}") from exc
    return client


def run(
    name: str,
    command: str | Sequence[str],
    fleet: Fleet = "lab",
    *,
    check: bool = False,
    timeout: float | None = None,
    stdin: bytes | None = None,
) -> CommandResult:
    """Run `command` (a list is quoted word by word) on host `name` and return what it printed.

    With `check`, a non-zero exit status raises RemoteError with the command's last error line.
    """
    text = command if isinstance(command, str) else shlex.join(command)
    log.info("running on %s: %s", name, text)
    client = connect(name, fleet)
    try:
        channel_in, channel_out, channel_err = client.exec_command(text, timeout=timeout)
        if stdin is not None:
            channel_in.write(stdin)
        channel_in.channel.shutdown_write()
        out = channel_out.read().decode("utf-8", errors="replace")
        err = channel_err.read().decode("utf-8", errors="replace")
        code = channel_out.channel.recv_exit_status()
    finally:
        client.close()
    result = CommandResult(host=name, command=text, exit_code=code, stdout=out, stderr=err)
    if check and not result.ok:
        last = (err.strip().splitlines() or ["(no error output)"])[-1]
        raise RemoteError(f"on {name}, `{text}` failed with status {code}: {last}")
    return result
