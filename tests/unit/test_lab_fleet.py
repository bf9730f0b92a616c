"""Choosing lab hosts and reporting a failed boot: clear errors, no lab needed."""

from __future__ import annotations

import pytest

from unops.errors import LabError
from unops.estate import load_estate
from unops.lab import fleet, machines, paths


def test_select_without_names_is_the_whole_fleet():
    """`unops lab up` with no host names boots every lab host of the estate."""
    estate = load_estate()
    assert fleet.select(estate, []) == estate.lab_hosts()


def test_select_names_unknown_hosts_and_lists_the_known_ones():
    """An unknown host name is an error naming it and every lab host."""
    with pytest.raises(LabError, match=r"not lab hosts: mx9, nope; the lab hosts are dir1, mail1"):
        fleet.select(load_estate(), ["mail1", "mx9", "nope"])


def test_select_keeps_the_order_given_without_repeats():
    """Hosts come back in the order named, each once."""
    names = [h.name for h in fleet.select(load_estate(), ["mon1", "dir1", "mon1"])]
    assert names == ["mon1", "dir1"]


def test_boot_report_shows_the_end_of_the_console(tmp_path, monkeypatch):
    """A host that failed to boot is reported with the last lines of its console."""
    monkeypatch.setattr(paths, "HOSTS_DIR", tmp_path / "hosts")
    monkeypatch.setattr(paths, "RUN_DIR", tmp_path / "run")
    paths.RUN_DIR.mkdir()
    lines = [f"line {n}" for n in range(100)] + ["Failed to start ssh.service"]
    machines.console_log("mail1").write_text("\n".join(lines) + "\n")
    report = machines.boot_report("mail1", lines=5)
    assert report.splitlines()[1:] == [
        "line 96",
        "line 97",
        "line 98",
        "line 99",
        "Failed to start ssh.service",
    ]
    assert "end of mail1's console" in report


def test_boot_report_says_when_a_host_left_nothing(tmp_path, monkeypatch):
    """With neither journal nor console, the report says so instead of being empty."""
    monkeypatch.setattr(paths, "HOSTS_DIR", tmp_path / "hosts")
    monkeypatch.setattr(paths, "RUN_DIR", tmp_path / "run")
    assert machines.boot_report("dir1") == "dir1 left no journal and no console output"


def test_the_lab_says_it_needs_root(monkeypatch):
    """Not root: the reason says so, and `up` fails with it before changing anything."""
    monkeypatch.setattr(fleet.os, "geteuid", lambda: 1000)
    assert "the lab needs root" in (fleet.cannot_run_reason() or "")
    with pytest.raises(LabError, match="the lab needs root"):
        fleet.up()


def test_the_lab_names_every_missing_tool(monkeypatch):
    """Without systemd-nspawn and nft, the reason names both and how to install them."""
    monkeypatch.setattr(fleet.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        fleet.shutil, "which", lambda tool: None if tool in ("systemd-nspawn", "nft") else tool
    )
    reason = fleet.cannot_run_reason() or ""
    assert reason.startswith("the lab needs systemd-nspawn, nft on this machine")
    assert "make host-packages" in reason
