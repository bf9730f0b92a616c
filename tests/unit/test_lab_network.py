"""The lab's network plan: link names that fit, and a firewall that fences the lab in."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Network

import pytest

from unops.errors import LabError
from unops.estate import load_estate
from unops.lab import network
from unops.lab.registries import Registry


def test_every_lab_host_gets_a_unique_link_name_that_fits_the_kernel_limit():
    """Host-side veth names are unique across the fleet and at most 15 characters."""
    names = [network.link_name(host.address) for host in load_estate().lab_hosts()]
    assert len(set(names)) == len(names)
    assert max(len(name) for name in names) <= 15
    assert len(network.BRIDGE) <= 15


def test_nftables_forwards_and_masquerades_only_to_the_registries():
    """Lab traffic goes out only to the registry set, on HTTP and HTTPS; the rest is dropped."""
    rules = network.nft_rules(
        IPv4Network("198.18.0.0/24"), [Registry("a.invalid", ("203.0.113.5", "203.0.113.6"))]
    )
    assert "elements = { 203.0.113.5, 203.0.113.6 }" in rules
    assert "ip saddr 198.18.0.0/24 ip daddr @registries tcp dport { 80, 443 } accept" in rules
    assert "ip saddr 198.18.0.0/24 ip daddr @registries masquerade" in rules
    forward = rules[rules.index("chain forward") : rules.index("chain postrouting")]
    assert forward.rstrip().splitlines()[-3:-1] == [
        f'    iifname "{network.BRIDGE}" drop',
        f'    oifname "{network.BRIDGE}" drop',
    ]
    # Replaced atomically: the table is declared, deleted and made again in one `nft -f`.
    assert rules.startswith(f"table inet {network.NFT_TABLE} {{}}\ndelete table")


def test_without_registries_the_set_is_empty_and_nothing_is_masqueraded_elsewhere():
    """No resolvable registry means an empty set: the lab reaches nothing outside."""
    rules = network.nft_rules(IPv4Network("198.18.0.0/24"), [])
    assert "elements" not in rules
    assert rules.count("masquerade") == 1


def _deleting(monkeypatch, still_there_after: bool) -> None:
    """`ip link del` fails as when the kernel took the link away first (or did not)."""
    answers = iter([True, still_there_after])
    monkeypatch.setattr(network, "link_exists", lambda link: next(answers))
    monkeypatch.setattr(network, "lab_namespaces", lambda: [])
    failed = subprocess.CompletedProcess([], 1, "", 'Cannot find device "unops-v11"')
    monkeypatch.setattr(network, "run", lambda command, check=True: failed)


def test_a_link_the_kernel_removed_meanwhile_is_not_an_error(monkeypatch):
    """After a crash, a namespace's end of a veth pair goes some time after `ip netns del`:
    a delete that fails because the link is already gone leaves what was wanted."""
    _deleting(monkeypatch, still_there_after=False)
    network.remove_host_network("", "unops-v11")


def test_a_link_that_stays_after_a_failed_delete_is_an_error(monkeypatch):
    """If the link is still there, the failure is reported with the command and its output."""
    _deleting(monkeypatch, still_there_after=True)
    with pytest.raises(LabError, match=r"`ip link del unops-v11` failed with status 1: Cannot"):
        network.remove_host_network("", "unops-v11")
