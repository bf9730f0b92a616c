"""The `lab` fixture: the rehearsal fleet, brought up once per session or reused if it runs.

Every test under tests/lab/ is marked `lab` (added here when a test lacks it), so that
`pytest -m 'not lab'` never touches the network. Where the lab cannot run (not root, no
systemd-nspawn), lab tests fail and say why: they are never skipped.

The fixture never takes the lab down: other sessions may be using it. The full suite's last
file, test_zz_teardown.py, takes it down and checks that nothing is left.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from unops.errors import UnopsError
from unops.estate import LabHost, load_estate
from unops.lab import fleet, keys, paths

log = logging.getLogger(__name__)

LAB_TESTS = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_TESTS in Path(str(item.fspath)).parents and "lab" not in item.keywords:
            item.add_marker(pytest.mark.lab)
    # The lab's own tests first, on a fleet no deploy has touched yet; then the services in the
    # order they build on each other (mail needs the directory; backups drill both; monitoring
    # probes all); the teardown last. The sort is stable: tests keep their order within a file.
    # Unit tests (outside tests/lab/) need no lab and fail fast: they come first.
    items.sort(
        key=lambda item: (
            _rank(Path(str(item.fspath)).name)
            if LAB_TESTS in Path(str(item.fspath)).parents
            else -1
        )
    )


# Lab test files by the first word after "test_": lower ranks run first; unknown files in between.
_ORDER = {"lab": 0, "directory": 1, "mail": 2, "backup": 3, "monitoring": 4, "deploy": 5, "zz": 9}


def _rank(filename: str) -> int:
    if not filename.startswith("test_"):
        return 6
    return _ORDER.get(filename.removeprefix("test_").split("_")[0].removesuffix(".py"), 6)


@dataclass(frozen=True)
class Lab:
    """The running fleet, as lab tests see it."""

    hosts: list[LabHost]
    ca_cert: Path
    brought_up: bool

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(
            f"{name!r} is not a lab host; known: {', '.join(h.name for h in self.hosts)}"
        )

    def ssh(
        self,
        host: LabHost | str,
        command: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` on `host` as root over real ssh, with strict host-key checking against
        the lab's known_hosts; with `check`, a failure raises with its stdout and stderr."""
        target = self.host(host) if isinstance(host, str) else host
        return keys.ssh(str(target.address), command, check=check, timeout=timeout)


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The lab fleet, up and running: reused when it already runs, brought up otherwise."""
    reason = fleet.cannot_run_reason()
    if reason:
        pytest.fail(f"lab tests cannot run here: {reason}", pytrace=False)
    estate = load_estate()
    already = fleet.is_up(estate)
    if not already:
        try:
            fleet.up(progress=lambda message: log.info("%s", message))
        except UnopsError as exc:
            pytest.fail(f"`unops lab up` failed: {exc}", pytrace=False)
    return Lab(hosts=estate.lab_hosts(), ca_cert=paths.CA_CERT, brought_up=not already)
