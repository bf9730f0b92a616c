"""pyinfra inventories built from the estate: one group per role, the same names in each fleet.

`inventory/production.py` and `inventory/lab.py` are thin files that call `groups()`; pyinfra
reads their module-level lists as groups. Host data says which fleet a host is in, its roles,
address and fully qualified name, so that deploys never need to guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from unops import PROJECT_ROOT
from unops.estate import Estate, load_estate
from unops.estate.models import Role
from unops.lab import paths

Fleet = Literal["production", "lab"]
HostEntry = tuple[str, dict[str, Any]]

# Pinned host keys of production, reviewed like the rest of the inventory (public keys only).
PRODUCTION_KNOWN_HOSTS = PROJECT_ROOT / "inventory" / "known_hosts"

# pyinfra group names, one per role (pyinfra groups are Python names: no dashes).
GROUPS = {role: role.value for role in Role}


def _ssh_data(fleet: Fleet) -> dict[str, Any]:
    # Strict host key checking everywhere: a host whose key is not pinned is refused, never
    # trusted on first use.
    if fleet == "lab":
        return {
            "ssh_user": "root",
            "ssh_key": str(paths.SSH_KEY),
            "ssh_known_hosts_file": str(paths.KNOWN_HOSTS),
            "ssh_strict_host_key_checking": "yes",
        }
    return {
        "ssh_known_hosts_file": str(PRODUCTION_KNOWN_HOSTS),
        "ssh_strict_host_key_checking": "yes",
    }


def groups(fleet: Fleet, estate: Estate | None = None) -> dict[str, list[HostEntry]]:
    """The hosts of `fleet` by role group; a lab inventory holds only hosts with a lab address."""
    estate = estate or load_estate()
    result: dict[str, list[HostEntry]] = {group: [] for group in GROUPS.values()}
    machines: list[tuple[str, list[Role], Any, Any]] = [
        (h.name, list(h.roles), h.address, h.lab_address) for h in estate.hosts
    ] + [(ap.name, [Role.ACCESS_POINT], ap.address, ap.lab_address) for ap in estate.access_points]
    for name, roles, address, lab_address in machines:
        target = lab_address if fleet == "lab" else address
        if target is None:
            continue
        data = {
            "fleet": fleet,
            "roles": [role.value for role in roles],
            "address": str(target),
            "fqdn": estate.fqdn(name),
            "ssh_hostname": str(target),
            **_ssh_data(fleet),
        }
        for role in roles:
            result[GROUPS[role]].append((name, data))
    return result


def inventory_path(name: str) -> Path:
    """`lab`, `production`, or a path to an inventory file, as `unops deploy --inventory` takes."""
    if name in ("lab", "production"):
        return PROJECT_ROOT / "inventory" / f"{name}.py"
    path = Path(name)
    if not path.is_file():
        from unops.errors import DeployError

        raise DeployError(f"inventory {name!r} is neither 'lab', 'production' nor an existing file")
    return path
