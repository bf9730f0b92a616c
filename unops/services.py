"""The services unops deploys, and the one order in which `unops deploy` converges them.

The directory comes first (mail reads accounts from it), then mail, then the backups of what
exists, then the monitoring that probes all of it. A service is a file deploys/<service>.py;
one that has no deploy file yet is left out of the order rather than failing it.
"""

from __future__ import annotations

import re
from pathlib import Path

from unops import PROJECT_ROOT
from unops.errors import DeployError

DEPLOYS_DIR = PROJECT_ROOT / "deploys"

# Convergence order of `unops deploy` without a service and of deploys/all.py.
ORDER = ("directory", "mail", "backup", "monitoring")

# Groups each service converges, for deploys that do not choose their hosts themselves; a
# service not listed here runs on every host and picks by role inside (directory, backup and
# monitoring each touch several roles).
TARGETS: dict[str, tuple[str, ...]] = {
    "mail": ("mail",),
}

# A service name is a deploy file's stem: no path separators, no leading dash or dot.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def available(deploys_dir: Path = DEPLOYS_DIR) -> list[str]:
    """The services of ORDER that have a deploy file, in order."""
    return [name for name in ORDER if (deploys_dir / f"{name}.py").is_file()]


def deploy_files(deploys_dir: Path = DEPLOYS_DIR) -> list[Path]:
    """The deploy files of every available service, in convergence order."""
    return [deploys_dir / f"{name}.py" for name in available(deploys_dir)]


def deploy_file(service: str, deploys_dir: Path = DEPLOYS_DIR) -> Path:
    """The deploy file of one service, deploys/<service>.py; DeployError names what exists.

    A path to a deploy file (ending in .py) is taken as it is, for deploys kept elsewhere.
    """
    if service.endswith(".py") and Path(service).is_file():
        return Path(service)
    path = deploys_dir / f"{service}.py"
    if not _NAME.match(service) or service == "all" or not path.is_file():
        known = sorted(p.stem for p in deploys_dir.glob("*.py") if p.stem != "all")
        raise DeployError(
            f"service {service!r} has no deploy file {path}; "
            f"known: {', '.join(known) or 'none yet'} (or no service for all, in order)"
        )
    return path


def targets(deploy: Path) -> tuple[str, ...] | None:
    """The groups a deploy file of deploys/ converges, or None for every host."""
    if deploy.resolve().parent != DEPLOYS_DIR.resolve():
        return None
    return TARGETS.get(deploy.stem)
