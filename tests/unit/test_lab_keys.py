"""The lab's SSH keys: made once, private keys private, and every host pinned under each name."""

from __future__ import annotations

import pytest

from unops.estate import load_estate
from unops.lab import keys, paths


@pytest.fixture(autouse=True)
def ssh_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "SSH_KEY", tmp_path / "ssh" / "id_ed25519")
    monkeypatch.setattr(paths, "KNOWN_HOSTS", tmp_path / "ssh" / "known_hosts")
    monkeypatch.setattr(paths, "HOST_KEYS_DIR", tmp_path / "ssh" / "host-keys")
    return tmp_path


def test_login_key_is_made_once_and_readable_by_root_only():
    """The root login key is an ed25519 pair, 0600, and the same on every later call."""
    line = keys.login_key()
    assert line.startswith("ssh-ed25519 ") and line.endswith(" unops-lab")
    assert keys.login_key() == line
    assert paths.SSH_KEY.stat().st_mode & 0o777 == 0o600
    assert paths.SSH_KEY.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_each_host_has_its_own_host_key():
    """Two hosts never share a host key; asking again gives the same one."""
    _, first = keys.host_key("mail1")
    _, second = keys.host_key("mail2")
    assert first != second
    assert keys.host_key("mail1")[1] == first


def test_known_hosts_pins_every_host_by_address_name_and_fqdn():
    """One line per lab host: address, short name and fqdn, then that host's own key."""
    hosts = load_estate().lab_hosts()
    path = keys.write_known_hosts(hosts)
    lines = path.read_text().splitlines()
    assert len(lines) == len(hosts)
    for host, line in zip(hosts, lines, strict=True):
        names, kind, blob = line.split()
        assert names == f"{host.address},{host.name},{host.fqdn}"
        assert f"{kind} {blob}" == " ".join(keys.host_key(host.name)[1].split()[:2])


def test_ssh_command_checks_host_keys_strictly_against_the_lab_file():
    """The ssh line uses the lab key only, strict checking, and no other known_hosts file."""
    line = keys.ssh_command("198.18.0.11", ["systemctl", "is-system-running"])
    assert "StrictHostKeyChecking=yes" in line
    assert f"UserKnownHostsFile={paths.KNOWN_HOSTS}" in line
    assert "GlobalKnownHostsFile=/dev/null" in line
    assert line[-2:] == ["root@198.18.0.11", "systemctl is-system-running"]
