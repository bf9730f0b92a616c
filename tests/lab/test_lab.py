"""The rehearsal fleet itself: real hosts, reachable, named, converging, and fenced in."""

from __future__ import annotations

import json
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dnslib import RCODE, DNSRecord

from unops.estate import load_estate
from unops.lab import fleet, keys, network, paths
from unops.lab.state import LabState

pytestmark = pytest.mark.lab

PROJECT = Path(__file__).resolve().parents[2]
RESOLVER = "198.18.0.1"


def _ask(name: str, kind: str) -> DNSRecord:
    return DNSRecord.parse(DNSRecord.question(name, kind).send(RESOLVER, 53, timeout=5))


def test_every_host_answers_ssh_with_its_pinned_host_key(lab):
    """Each lab host logs root in by the lab key, its host key checked strictly."""
    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        names = list(pool.map(lambda h: lab.ssh(h, "hostname").stdout.strip(), lab.hosts))
    assert names == [host.name for host in lab.hosts]


def test_ssh_refuses_a_host_whose_key_is_not_pinned(lab, tmp_path):
    """With an empty known_hosts and strict checking, ssh refuses: no trust on first use."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = lab.hosts[0]
    command = keys.ssh_command(str(host.address), "true")
    command = [part.replace(str(paths.KNOWN_HOSTS), str(empty)) for part in command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_known_hosts_pins_each_host_by_address_name_and_fqdn(lab):
    """known_hosts holds every host's key under its address, short name and fqdn."""
    for host in lab.hosts:
        for alias in (str(host.address), host.name, host.fqdn):
            found = subprocess.run(
                ["ssh-keygen", "-F", alias, "-f", str(paths.KNOWN_HOSTS)],
                capture_output=True,
                text=True,
            )
            assert found.returncode == 0, f"{alias} is not in {paths.KNOWN_HOSTS}"


def test_systemd_is_running_on_every_host(lab):
    """`systemctl is-system-running` answers `running` on every lab host (no failed unit)."""
    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        states = list(
            pool.map(
                lambda h: lab.ssh(h, "systemctl is-system-running", check=False).stdout.strip(),
                lab.hosts,
            )
        )
    not_running = {h.name: s for h, s in zip(lab.hosts, states, strict=True) if s != "running"}
    failed = {
        name: lab.ssh(name, "systemctl --failed --no-legend", check=False).stdout.strip()
        for name in not_running
    }
    assert not_running == {}, f"hosts not 'running', with their failed units: {failed}"


def test_a_package_installs_on_a_host_through_the_shared_cache(lab):
    """A removed package installs again from the registry; its .deb lands in the shared cache."""
    host = "backup1"
    lab.ssh(host, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q hello", check=False)
    assert lab.ssh(host, "command -v hello", check=False).returncode != 0
    lab.ssh(
        host,
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello",
    )
    assert lab.ssh(host, "hello").stdout.strip() == "Hello, world!"
    assert list(paths.APT_ARCHIVES.glob("hello_*.deb")), f"no hello .deb in {paths.APT_ARCHIVES}"


def test_two_hosts_install_the_same_package_at_the_same_time(lab):
    """Two hosts installing one package at once both succeed: the shared cache holds no apt lock."""
    hosts = ["ap-ga1-01", "ap-ga1-02"]
    for host in hosts:
        lab.ssh(host, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q jq libjq1", check=False)
    install = "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda h: lab.ssh(h, install, check=False), hosts))
    for host, result in zip(hosts, results, strict=True):
        assert result.returncode == 0, f"{host}: {result.stdout}{result.stderr}"
        assert lab.ssh(host, "echo '{\"a\": 1}' | jq .a").stdout.strip() == "1"


def test_the_package_cache_forwards_only_to_the_registries(lab):
    """Asked through the lab's apt proxy for a host that is no registry, the cache answers 403."""
    fetch = (
        "python3 -c 'import urllib.request, urllib.error\n"
        'proxy = urllib.request.ProxyHandler({"http": "http://198.18.0.1:3142"})\n'
        "try:\n"
        '    urllib.request.build_opener(proxy).open("http://www.example.org/", timeout=10)\n'
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code)'"
    )
    assert lab.ssh("cms1", fetch).stdout.strip() == "403"


def test_two_hosts_reach_each_other_by_name_and_by_address(lab):
    """mail1 opens TCP connections to mail2's SSH port by short name, fqdn and address."""
    mail2 = lab.host("mail2")
    probe = (
        "python3 -c 'import socket,sys\n"
        "for target in sys.argv[1:]:\n"
        "    socket.create_connection((target, 22), timeout=5).close()\n"
        "    print(target, socket.gethostbyname(target))'"
    )
    out = lab.ssh("mail1", f"{probe} mail2 {mail2.fqdn} {mail2.address}").stdout.split()
    address = str(mail2.address)
    assert out == ["mail2", address, mail2.fqdn, address, address, address]


def test_a_name_outside_the_lab_is_refused_at_once(lab):
    """A name outside the lab gets REFUSED (an answer, not a timeout); a host's lookup fails."""
    reply = _ask("www.example.org", "A")
    assert reply.header.rcode == RCODE.REFUSED
    assert reply.rr == []
    result = lab.ssh("mail1", "getent hosts www.example.org", check=False)
    assert result.returncode == 2
    assert result.stdout == ""


def test_the_resolver_answers_for_hosts_mail_domains_and_reverse_names(lab):
    """The resolver gives every host's A and PTR record and each mail domain's MX records."""
    estate = load_estate()
    for host in lab.hosts:
        assert [str(r.rdata) for r in _ask(host.fqdn, "A").rr] == [str(host.address)]
        reverse = ".".join(reversed(str(host.address).split("."))) + ".in-addr.arpa"
        assert [str(r.rdata) for r in _ask(reverse, "PTR").rr] == [host.fqdn + "."]
    domain = estate.mail_domains[0]
    mx = sorted(str(r.rdata) for r in _ask(domain, "MX").rr)
    assert mx == sorted(f"10 {h.name}.{estate.zone}." for h in estate.hosts_with_role("mail"))


def test_the_resolver_serves_records_a_deploy_publishes(lab):
    """A TXT record written to DNS_RECORDS_DIR is answered, and goes away with its file."""
    estate = load_estate()
    name = f"_test-{uuid.uuid4().hex[:8]}.{estate.mail_domains[0]}"
    file = paths.DNS_RECORDS_DIR / f"lab-test-{uuid.uuid4().hex[:8]}.json"
    file.write_text(json.dumps([{"name": name, "type": "TXT", "value": "v=spf1 -all"}]))
    try:
        reply = _ask(name, "TXT")
        assert [str(r.rdata) for r in reply.rr] == ['"v=spf1 -all"']
    finally:
        file.unlink()
    assert _ask(name, "TXT").header.rcode == RCODE.NXDOMAIN


def test_hosts_trust_the_lab_ca(lab):
    """Each host's system trust bundle holds the lab CA certificate."""
    pem = lab.ca_cert.read_text().strip()
    bundle = lab.ssh("cms1", "cat /etc/ssl/certs/ca-certificates.crt").stdout
    assert pem in bundle


def test_lab_traffic_leaves_only_for_the_registries(lab):
    """The nftables table forwards lab traffic out only to the registry set, and drops the rest."""
    rules = subprocess.run(
        ["nft", "list", "table", "inet", network.NFT_TABLE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ip daddr @registries masquerade" in rules
    assert f'iifname "{network.BRIDGE}" drop' in rules
    assert "masquerade" not in rules.replace("ip daddr @registries masquerade", "")


def test_a_small_deploy_run_twice_changes_nothing_the_second_time(lab):
    """deploys/lab_smoke.py converges img1; run again, pyinfra reports no change at all."""
    command = [
        str(PROJECT / ".venv/bin/pyinfra"),
        "-y",
        "inventory/lab.py",
        "deploys/lab_smoke.py",
        "--limit",
        "img1",
    ]
    lab.ssh("img1", "rm -rf /srv/unops-smoke")
    first = _pyinfra(command)
    assert _grand_total(first)["success"] >= 1, first
    second = _pyinfra(command)
    assert _grand_total(second) == {"success": 0, "error": 0, "no_change": 3}, second


def _pyinfra(command: list[str]) -> str:
    # pyinfra writes its progress and results table to stderr.
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def _grand_total(output: str) -> dict[str, int]:
    # pyinfra's results table: "Grand total  <hosts> <success> <error> <no change>", '-' for 0.
    line = next(line for line in output.splitlines() if line.strip().startswith("Grand total"))
    numbers = [0 if cell == "-" else int(cell) for cell in line.split()[2:]]
    return {"success": numbers[1], "error": numbers[2], "no_change": numbers[3]}


def test_up_again_leaves_the_same_fleet(lab):
    """A second `up` boots nothing: every host keeps its container process."""
    before = LabState.load()
    fleet.up()
    after = LabState.load()
    assert {n: h.leader for n, h in after.hosts.items()} == {
        n: h.leader for n, h in before.hosts.items()
    }
    assert set(after.hosts) == {h.name for h in lab.hosts}
