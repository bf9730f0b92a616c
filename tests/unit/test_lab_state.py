"""The lab's record of what it made, and how it tells its own processes from others'."""

from __future__ import annotations

import os
import subprocess

import pytest

from unops.errors import LabError
from unops.lab.state import HostState, LabState, Proc, start_time


def test_state_round_trips_through_its_file(tmp_path):
    """Everything `up` records (bridge, table, services, hosts) reads back the same."""
    path = tmp_path / "state.json"
    state = LabState(bridge="unops-br0", nft_table="unops_lab")
    state.dns = Proc(10, 20)
    state.hosts["mail1"] = HostState(
        "mail1", "198.18.0.11", "unops-mail1", "unops-v11", "/x/root", Proc(1, 2), Proc(3, 4)
    )
    state.save(path)
    assert LabState.load(path) == state


def test_a_missing_state_file_is_an_empty_lab(tmp_path):
    """No file means nothing was made."""
    assert LabState.load(tmp_path / "none.json") == LabState()


def test_an_unreadable_state_file_says_how_to_recover(tmp_path):
    """A corrupt file is an error that names it and the way out."""
    path = tmp_path / "state.json"
    path.write_text('{"hosts": {"mail1": {"name": 1}}}')
    with pytest.raises(LabError, match="remove it and run `unops lab up`"):
        LabState.load(path)


def test_a_process_is_alive_only_with_its_recorded_start_time():
    """A live process with another start time (a reused id) is not taken for the recorded one."""
    own = Proc.of(os.getpid())
    assert own.alive()
    assert not Proc(own.pid, own.start + 1).alive()


def test_an_ended_process_is_not_alive():
    """After a child exits and is collected, its record says it is gone."""
    child = subprocess.Popen(["true"])
    proc = Proc.of(child.pid) if start_time(child.pid) is not None else Proc(child.pid, 0)
    child.wait()
    assert not proc.alive()
