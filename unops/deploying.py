"""Run pyinfra deploys and return exact per-host, per-operation results.

pyinfra needs gevent's monkey patching before anything else is imported, which does not mix with
a click CLI, rich and the rest of unops in one process. So the pyinfra machinery runs in a child
Python process (`unops.deploy_worker`), driven the way pyinfra's own CLI drives it, and reports
progress events and the final result back as JSON lines. The estate is validated here first: an
invalid estate stops the run before the child starts, so before any connection.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unops import PROJECT_ROOT, services
from unops.errors import DeployError
from unops.estate import load_estate
from unops.inventory import inventory_path

logger = logging.getLogger(__name__)

# How much of the child's own output (pyinfra's log) to quote when it dies unexpectedly.
_STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class OpResult:
    """One operation on one host: whether it changed (or, dry, would change) and succeeded.

    `conditional` marks, in a dry run, an operation gated by `_if=`: whether it runs depends on
    operations before it, so it is not counted as a change.
    """

    name: str
    changed: bool
    success: bool
    error: str | None = None
    conditional: bool = False


@dataclass
class HostResult:
    """What happened on one host; `error` is set when the host could not be reached or failed."""

    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    error: str | None = None
    operations: list[OpResult] = field(default_factory=list)
    fleet: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed == 0


@dataclass
class DeployResult:
    """The result of one run over an inventory: per host, in the order pyinfra reported them."""

    inventory: str
    deploy_files: list[str]
    dry: bool
    hosts: dict[str, HostResult] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """Total operations that changed something (or, dry, would change) over all hosts."""
        return sum(host.changed for host in self.hosts.values())

    @property
    def failed_hosts(self) -> list[str]:
        return [name for name, host in self.hosts.items() if not host.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "deploy_files": self.deploy_files,
            "dry": self.dry,
            "changed": self.changed,
            "failed_hosts": self.failed_hosts,
            "hosts": {
                name: {
                    "changed": host.changed,
                    "unchanged": host.unchanged,
                    "failed": host.failed,
                    "error": host.error,
                    "fleet": host.fleet,
                    "operations": [
                        {
                            "name": op.name,
                            "changed": op.changed,
                            "success": op.success,
                            "error": op.error,
                            "conditional": op.conditional,
                        }
                        for op in host.operations
                    ],
                }
                for name, host in self.hosts.items()
            },
        }


@dataclass(frozen=True)
class DeployEvent:
    """A step of a run as it happens, for progress displays.

    kind is one of: "loading" (a deploy file is being planned), "connected" and "connect_failed"
    (host set), "operation" (host, operation, changed and success set), "planned" (dry run done).
    """

    kind: str
    host: str | None = None
    operation: str | None = None
    changed: bool | None = None
    success: bool | None = None
    error: str | None = None
    file: str | None = None


ProgressCallback = Callable[[DeployEvent], None]


def run_deploy(
    inventory: str | Path,
    deploy_files: Sequence[Path],
    *,
    limit: Sequence[str] | None = None,
    dry: bool = False,
    progress: ProgressCallback | None = None,
    estate_root: Path | None = None,
) -> DeployResult:
    """Validate the estate, then run `deploy_files` in order over `inventory` with pyinfra.

    `inventory` is "lab", "production" or a pyinfra inventory file; `limit` restricts the run to
    hosts or groups (as pyinfra's --limit). With `dry`, nothing is executed and the result says
    what would change. `estate_root` is the estate to validate (default inventory/estate/).
    Raises DeployError when the run cannot start or pyinfra itself fails; a host that fails is
    reported in the result (`failed_hosts`), not raised.
    """
    # An invalid estate raises EstateError here, before any host is contacted.
    load_estate(estate_root)

    inventory_file = inventory_path(str(inventory)).resolve()
    files = [Path(f).resolve() for f in deploy_files]
    if not files:
        raise DeployError("no deploy file given; expected at least one deploys/<service>.py")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DeployError(f"deploy file(s) not found: {', '.join(missing)}")

    request = {
        "inventory": str(inventory_file),
        # Each file with the groups it converges (None: every host), from unops.services.
        "deploy_files": [{"path": str(f), "groups": services.targets(f)} for f in files],
        "limit": list(limit or []),
        "dry": dry,
    }
    result = DeployResult(inventory=str(inventory), deploy_files=[str(f) for f in files], dry=dry)
    logger.info(
        "running %s on inventory %s%s",
        ", ".join(f.name for f in files),
        inventory_file,
        " (dry)" if dry else "",
    )
    final = _run_worker(request, progress)
    for name, data in final["hosts"].items():
        result.hosts[name] = _host_result(data)
    return result


def _host_result(data: dict[str, Any]) -> HostResult:
    operations = [
        OpResult(
            name=str(op["name"]),
            changed=bool(op["changed"]),
            success=bool(op["success"]),
            error=op.get("error"),
            conditional=bool(op.get("conditional", False)),
        )
        for op in data["operations"]
    ]
    return HostResult(
        changed=sum(1 for op in operations if op.success and op.changed),
        unchanged=sum(1 for op in operations if op.success and not op.changed),
        failed=sum(1 for op in operations if not op.success),
        error=data.get("error"),
        operations=operations,
        fleet=data.get("fleet"),
    )


def _run_worker(request: dict[str, Any], progress: ProgressCallback | None) -> dict[str, Any]:
    """Start the child, relay its events to `progress`, and return its final result."""
    final: dict[str, Any] | None = None
    fatal: str | None = None
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as stderr:
        # The child's stdout carries only our JSON events; pyinfra's log goes to its stderr.
        with subprocess.Popen(
            [sys.executable, "-m", "unops.deploy_worker"],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            encoding="utf-8",
        ) as child:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(json.dumps(request))
            child.stdin.close()
            for line in child.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = None
                # Only our own events are objects with an "event" key; anything else that reached
                # the pipe (a stray print from a deploy) is passed to the debug log.
                if not isinstance(event, dict) or "event" not in event:
                    logger.debug("deploy worker: %s", line.rstrip())
                    continue
                kind = event.pop("event")
                if kind == "result":
                    final = event
                elif kind == "fatal":
                    fatal = str(event["message"])
                elif progress is not None:
                    progress(DeployEvent(kind=kind, **event))
            status = child.wait()
        stderr.seek(0)
        tail = stderr.read().splitlines()[-_STDERR_TAIL_LINES:]
    for line in tail:
        logger.debug("pyinfra: %s", line)
    if fatal is not None:
        raise DeployError(fatal)
    if final is None:
        output = "\n".join(f"  {line}" for line in tail) or "  (no output)"
        raise DeployError(f"the pyinfra run ended (status {status}) without a result:\n{output}")
    return final
