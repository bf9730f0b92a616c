"""`unops directory` without a network: a bad roster stops before any connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from unops.directory.client import endpoints
from unops.estate import load_estate


def run(*args: str, secrets: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UNOPS_SECRETS_DIR": str(secrets)}
    return subprocess.run(
        [sys.executable, "-m", "unops", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_bad_roster_is_reported_before_connecting(tmp_path: Path) -> None:
    """A roster with a bad row exits 1 naming file, line and value; nothing is contacted."""
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "address,mission,display_name,quota_mb,state\n"
        "ada@no.missions.example,NO,Ada,2048,active\n"
        "bob@no.missions.example,NO,Bob,2048,retired\n",
        encoding="utf-8",
    )
    # An empty secrets folder: had sync tried to bind, it would fail on the missing password.
    done = run("directory", "sync", str(roster), secrets=tmp_path / "secrets")
    assert done.returncode == 1
    assert f"{roster}:3" in done.stderr and "'retired'" in done.stderr
    assert "nothing was changed" in done.stderr
    assert "password" not in done.stderr


def test_missing_admin_secret_says_to_deploy_first(tmp_path: Path) -> None:
    """A valid roster without the admin secret names the missing file and the deploy to run."""
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "address,mission,display_name,quota_mb,state\nada@no.missions.example,NO,Ada,2048,active\n",
        encoding="utf-8",
    )
    done = run("directory", "sync", str(roster), "--dry", secrets=tmp_path / "secrets")
    assert done.returncode == 1
    assert "ldap/admin" in done.stderr and "unops deploy directory" in done.stderr


def test_lab_endpoints_are_addresses_and_production_names() -> None:
    """Lab endpoints connect by address (names do not resolve); production ones by name."""
    estate = load_estate()
    [lab] = endpoints(estate, "lab", "directory")
    [production] = endpoints(estate, "production", "directory")
    dir1 = estate.host("dir1")
    assert (lab.address, lab.fqdn) == (str(dir1.lab_address), "dir1.ict.example")
    assert production.address == production.fqdn == "dir1.ict.example"
