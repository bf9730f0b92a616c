# mypy: disable-error-code="no-untyped-call"
# (pyinfra's API and pyinfra_cli are only partly annotated.)
"""The child process of `unops.deploying.run_deploy`: runs pyinfra the way pyinfra's CLI does.

Reads one JSON request on stdin ({inventory, deploy_files, limit, dry}) and writes JSON lines to
stdout: progress events, then one "result" (or one "fatal"). Anything else that would reach
stdout (pyinfra's log, prints in deploy code) is sent to stderr, so the protocol stays clean.
Run as `python -m unops.deploy_worker`; not meant to be run by hand.
"""

# NB: importing pyinfra_cli monkey-patches the standard library for gevent; it must come before
# anything that opens sockets or starts threads, which is why this module is its own process.
import pyinfra_cli  # type: ignore[import-untyped]  # noqa: F401, I001

import json
import logging
import os
import re
import sys
import traceback
from fnmatch import fnmatch
from typing import IO, Any

import click
import gevent  # type: ignore[import-untyped]
import pyinfra
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.api.output import set_echo, set_formatter
from pyinfra.api.state import BaseStateCallback, State, StateStage
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state
from pyinfra_cli.exceptions import UnexpectedExternalError  # type: ignore[import-untyped]
from pyinfra_cli.inventory import make_inventory  # type: ignore[import-untyped]
from pyinfra_cli.log import setup_logging  # type: ignore[import-untyped]
from pyinfra_cli.prints import pretty_op_name  # type: ignore[import-untyped]
from pyinfra_cli.util import exec_file  # type: ignore[import-untyped]

# Lines of a failed command's stderr kept as the operation's error.
_ERROR_LINES = 5
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Events:
    """Writes one JSON object a line to the parent."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def send(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()


class _HostLog(logging.Handler):
    """Keeps pyinfra's warnings and errors per host: the reason of a failure that left no stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if not ctx_host.isset():
            return
        text = _ANSI.sub("", record.getMessage()).strip()
        text = re.sub(r"^\[[^\]]+\]\s*", "", text)
        if text:
            self.messages.setdefault(ctx_host.get().name, []).append(text)


def _op_name(state: State, host: Any, op_hash: Any) -> str:
    """The operation's name on this host.

    NB: pyinfra shares one operation between hosts when it is called from the same line, and its
    summary names it after any one host ("Create the repository of mail4"); the name given on
    each host is kept in that host's arguments.
    """
    name = state.get_op_data_for_host(host, op_hash).global_arguments.get("name")
    return str(name) if name else str(pretty_op_name(state.op_meta[op_hash]))


def _callbacks(events: _Events, connect_errors: dict[str, str]) -> BaseStateCallback:
    failed: set[tuple[str, Any]] = set()

    class Callbacks(BaseStateCallback):
        @staticmethod
        def host_connect(state: State, host: Any) -> None:
            events.send("connected", host=host.name)

        @staticmethod
        def host_connect_error(state: State, host: Any, error: Any) -> None:
            connect_errors[host.name] = _ANSI.sub("", str(error)) or type(error).__name__
            events.send("connect_failed", host=host.name, error=connect_errors[host.name])

        @staticmethod
        def operation_host_error(state: State, host: Any, op_hash: Any, *args: Any) -> None:
            # NB: sent now, because a failure of the last active host ends the run before
            # operation_end is called.
            failed.add((host.name, op_hash))
            name = _op_name(state, host, op_hash)
            events.send("operation", host=host.name, operation=name, changed=False, success=False)

        @staticmethod
        def operation_end(state: State, op_hash: Any) -> None:
            for host in state.inventory.iter_activated_hosts():
                if op_hash not in state.ops[host] or (host.name, op_hash) in failed:
                    continue
                meta = state.ops[host][op_hash].operation_meta
                if meta.is_complete():
                    success = meta.did_succeed()
                    changed = success and meta.did_change()
                    events.send(
                        "operation",
                        host=host.name,
                        operation=_op_name(state, host, op_hash),
                        changed=changed,
                        success=success,
                    )

    return Callbacks()


def _apply_limit(inventory: Any, patterns: list[str]) -> list[Any] | None:
    """Hosts matching group names or host name patterns, as pyinfra's --limit; None for all."""
    if not patterns:
        return None
    hosts: list[Any] = []
    for pattern in patterns:
        try:
            matched = list(inventory.get_group(pattern))
        except Exception:  # pyinfra raises NoGroupError for a name that is not a group
            matched = [host for host in inventory if fnmatch(host.name, pattern)]
        if not matched:
            known = ", ".join(sorted(host.name for host in inventory))
            raise PyinfraError(f"--limit {pattern!r} matches no host or group; hosts: {known}")
        hosts.extend(h for h in matched if h not in hosts)
    return hosts


def _load_deploy_file(state: State, filename: str, groups: list[str] | None) -> None:
    """Plan `filename` on each active host of `groups` (all when None), in parallel.

    pyinfra_cli's load_deploy_file plans a file on every active host; a service deploy that
    serves one role is planned only where that role is.
    """
    hosts = [
        host
        for host in state.inventory.get_active_hosts()
        if groups is None or set(host.groups) & set(groups)
    ]
    state.current_deploy_filename = filename

    def plan(host: Any) -> Exception | None:
        try:
            with ctx_config.use(state.config.copy()), ctx_host.use(host):
                exec_file(filename)
        except Exception as exc:  # raised below, in this greenlet's caller
            return exc
        return None

    greenlets = [state.pool.spawn(plan, host) for host in hosts]
    for greenlet in gevent.iwait(greenlets):
        error = greenlet.get()
        if error is not None:
            raise error


def _op_error(meta: Any, log: list[str]) -> str:
    lines = [line for line in meta.stderr_lines if line.strip()][-_ERROR_LINES:]
    if lines:
        return "\n".join(lines)
    return log[-1] if log else "the operation failed without output"


def _results(
    state: State, dry: bool, limit: list[Any] | None, log: _HostLog, connect_errors: dict[str, str]
) -> dict[str, Any]:
    hosts: dict[str, dict[str, Any]] = {}
    activated = set(state.activated_hosts)
    for host in state.inventory:
        if limit is not None and host not in limit:
            continue
        fleet = host.data.get("fleet")
        entry: dict[str, Any] = {"error": None, "fleet": fleet, "operations": []}
        hosts[host.name] = entry
        if host not in activated:
            entry["error"] = connect_errors.get(host.name, "could not connect")
            continue
        for op_hash in state.get_op_order():
            if op_hash not in state.ops[host]:
                continue
            op_data = state.get_op_data_for_host(host, op_hash)
            meta = op_data.operation_meta
            name = _op_name(state, host, op_hash)
            if dry:
                conditional = bool(op_data.global_arguments["_if"])
                maybe = bool(meta._maybe_is_change)
                entry["operations"].append(
                    {
                        "name": name,
                        "changed": maybe and not conditional,
                        "success": True,
                        "error": None,
                        "conditional": maybe and conditional,
                    }
                )
            elif meta.is_complete():
                success = meta.did_succeed()
                entry["operations"].append(
                    {
                        "name": name,
                        "changed": success and meta.did_change(),
                        "success": success,
                        "error": None
                        if success
                        else _op_error(meta, log.messages.get(host.name, [])),
                    }
                )
            # NB: an operation that never ran (its host failed earlier) is left out of the result.
        if host in state.failed_hosts and entry["error"] is None:
            entry["error"] = "an operation failed; later operations on this host did not run"
    return {"hosts": hosts}


def _run(request: dict[str, Any], events: _Events) -> None:
    # What pyinfra_cli.main and cli._main set up, minus prompts: a run is never interactive.
    pyinfra.is_cli = True
    set_formatter(click.style)
    set_echo(lambda *args, **kwargs: click.echo(*args, **{**kwargs, "err": True}))
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    setup_logging(logging.INFO)
    host_log = _HostLog()
    logging.getLogger("pyinfra").addHandler(host_log)

    state = State(check_for_changes=True)
    state.cwd = os.getcwd()
    ctx_state.set(state)
    config = Config()
    ctx_config.set(config)
    config.lock_current_state()

    inventory = make_inventory(request["inventory"], cwd=state.cwd)
    ctx_inventory.set(inventory)
    limit = _apply_limit(inventory, request["limit"])
    state.init(inventory, config, initial_limit=limit)
    connect_errors: dict[str, str] = {}
    state.add_callback_handler(_callbacks(events, connect_errors))

    try:
        state.set_stage(StateStage.Connect)
        connect_all(state)

        state.set_stage(StateStage.Prepare)
        for number, deploy in enumerate(request["deploy_files"]):
            events.send("loading", file=deploy["path"])
            config.lock_current_state()
            state.current_op_file_number = number
            _load_deploy_file(state, deploy["path"], deploy["groups"])
            config.reset_locked_state()

        if request["dry"]:
            events.send("planned")
        else:
            state.set_stage(StateStage.Execute)
            run_ops(state)
    except PyinfraError as exc:
        # "No hosts remaining!" and the like: every host failed; the result says which and why.
        if not state.failed_hosts:
            raise
        logging.getLogger("pyinfra").warning("run stopped: %s", exc)
    finally:
        state.set_stage(StateStage.Disconnect)
        disconnect_all(state)
    events.send("result", **_results(state, request["dry"], limit, host_log, connect_errors))


def _describe(exc: BaseException) -> str:
    """One line for an exception: for an error in deploy code, its file, line and message."""
    if isinstance(exc, UnexpectedExternalError):
        inner = exc.exception
        if isinstance(inner, UnexpectedExternalError):
            # An error inside a file included with local.include (deploys/all.py): name that file.
            return _describe(inner)
        line = None
        tb = inner.__traceback__ or getattr(inner, "_traceback", None)
        for frame in traceback.extract_tb(tb):
            if frame.filename == exc.filename:
                line = frame.lineno
        where = f"{exc.filename}:{line}" if line else exc.filename
        return f"{where}: the deploy raised {type(inner).__name__}: {inner}"
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    return f"{type(exc).__name__}: {exc}"


def main() -> None:
    # Keep the real stdout for events and point fd 1 at stderr for everything else.
    events = _Events(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        _run(json.loads(sys.stdin.read()), events)
    except Exception as exc:  # any failure must reach the parent as a message, not a traceback
        logging.getLogger(__name__).debug("deploy worker failed", exc_info=True)
        events.send("fatal", message=_ANSI.sub("", _describe(exc)))
        sys.exit(1)


if __name__ == "__main__":
    main()
