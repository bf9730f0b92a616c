"""The pyinfra inventories built from the estate: groups by role, fleet data, pinned host keys."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from unops import PROJECT_ROOT
from unops.errors import DeployError
from unops.estate import load_estate
from unops.inventory import GROUPS, PRODUCTION_KNOWN_HOSTS, groups, inventory_path
from unops.lab import paths


def test_lab_inventory_holds_only_hosts_with_a_lab_address() -> None:
    """Every lab host is in its role groups with its lab address; no other host is."""
    estate = load_estate()
    fleet = groups("lab", estate)

    names = {name for entries in fleet.values() for name, _ in entries}
    assert names == {host.name for host in estate.lab_hosts()}
    for entries in fleet.values():
        for name, data in entries:
            lab_host = next(h for h in estate.lab_hosts() if h.name == name)
            assert data["ssh_hostname"] == str(lab_host.address)
            assert data["fleet"] == "lab"
            assert data["fqdn"] == f"{name}.ict.example"


def test_production_inventory_groups_every_machine_by_role() -> None:
    """Production puts the four mail servers in `mail` and the 24 access points in their group."""
    estate = load_estate()
    fleet = groups("production", estate)

    assert [name for name, _ in fleet["mail"]] == ["mail1", "mail2", "mail3", "mail4"]
    assert len(fleet["access_point"]) == 24
    mail1 = dict(fleet["mail"])["mail1"]
    assert mail1["ssh_hostname"] == str(estate.host("mail1").address)
    assert mail1["roles"] == ["mail"]


@pytest.mark.parametrize("fleet", ["lab", "production"])
def test_every_host_requires_a_pinned_host_key(fleet: str) -> None:
    """Strict host key checking against the fleet's own known_hosts file, for every host."""
    known_hosts = paths.KNOWN_HOSTS if fleet == "lab" else PRODUCTION_KNOWN_HOSTS
    for entries in groups(fleet).values():
        for _, data in entries:
            assert data["ssh_strict_host_key_checking"] == "yes"
            assert data["ssh_known_hosts_file"] == str(known_hosts)


@pytest.mark.parametrize("fleet", ["lab", "production"])
def test_inventory_file_exposes_one_group_per_role(fleet: str) -> None:
    """inventory/<fleet>.py defines each role group as pyinfra reads it: a list of (name, data)."""
    module = runpy.run_path(str(inventory_path(fleet)))

    for group in GROUPS.values():
        assert module[group] == groups(fleet)[group]


def test_inventory_path_takes_a_fleet_name_or_an_existing_file(tmp_path: Path) -> None:
    """'lab' and 'production' name the repository's inventories; a file is taken as it is."""
    custom = tmp_path / "inventory.py"
    custom.write_text("here = ['@local']\n", encoding="utf-8")

    assert inventory_path("lab") == PROJECT_ROOT / "inventory" / "lab.py"
    assert inventory_path("production") == PROJECT_ROOT / "inventory" / "production.py"
    assert inventory_path(str(custom)) == custom


def test_inventory_path_refuses_anything_else() -> None:
    """An unknown inventory is refused with the value and what is accepted."""
    with pytest.raises(DeployError, match=r"inventory 'staging' is neither 'lab', 'production'"):
        inventory_path("staging")
