"""The lab's network on the control machine: a bridge, one namespace and veth pair per host,
and an nftables table that lets lab hosts reach the package registries and nothing else outside.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from unops.errors import LabError
from unops.lab.registries import Registry
from unops.lab.system import run

log = logging.getLogger(__name__)

BRIDGE = "unops-br0"
NFT_TABLE = "unops_lab"
# Host-side veth names carry this prefix and the host's last address byte (links are 15 chars).
LINK_PREFIX = "unops-v"
NETNS_PREFIX = "unops-"
FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")
# Registries are reached over HTTP and HTTPS only.
REGISTRY_PORTS = (80, 443)


def link_name(address: IPv4Address) -> str:
    return f"{LINK_PREFIX}{int(address) & 0xFF}"


def netns_name(host: str) -> str:
    return f"{NETNS_PREFIX}{host}"


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def lab_links() -> list[str]:
    """Links on the control machine that the lab made (by their prefix)."""
    out = run(["ip", "-o", "link", "show"]).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [name for name in names if name == BRIDGE or name.startswith(LINK_PREFIX)]


def lab_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [name for name in names if name.startswith(NETNS_PREFIX)]


def ensure_bridge(address: IPv4Address, network: IPv4Network) -> None:
    """The bridge every host's veth joins, holding the lab's gateway and resolver address."""
    if not link_exists(BRIDGE):
        log.info("creating bridge %s at %s/%s", BRIDGE, address, network.prefixlen)
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    current = run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if f" {address}/" not in current:
        run(["ip", "addr", "add", f"{address}/{network.prefixlen}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_host_network(
    host: str, address: IPv4Address, network: IPv4Network, gateway: IPv4Address
) -> tuple[str, str]:
    """A namespace for `host` with eth0 at `address`, joined to the bridge; (netns, link)."""
    netns, link = netns_name(host), link_name(address)
    remove_host_network(netns, link)
    log.info("creating namespace %s with %s on %s", netns, address, BRIDGE)
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", link, "master", BRIDGE, "up"])
    inside = ["ip", "-n", netns]
    run([*inside, "link", "set", "lo", "up"])
    run([*inside, "addr", "add", f"{address}/{network.prefixlen}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "route", "add", "default", "via", str(gateway)])
    return netns, link


def remove_host_network(netns: str, link: str) -> None:
    # Deleting one end of a veth pair deletes both; deleting the namespace frees its end.
    if link_exists(link):
        result = run(["ip", "link", "del", link], check=False)
        # The kernel frees a namespace, and with it this end of the pair, some time after
        # `ip netns del` returns (seen after a crash): a link gone meanwhile is what was wanted.
        if result.returncode != 0 and link_exists(link):
            detail = (result.stderr or result.stdout).strip()
            raise LabError(f"`ip link del {link}` failed with status {result.returncode}: {detail}")
    if netns in lab_namespaces():
        run(["ip", "netns", "del", netns])


def remove_bridge() -> None:
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])


def nft_rules(network: IPv4Network, registries: list[Registry]) -> str:
    """The lab's nftables table: forward only to the registries, masquerade only to them."""
    addresses = sorted({a for registry in registries for a in registry.addresses})
    elements = f"    elements = {{ {', '.join(addresses)} }}\n" if addresses else ""
    ports = ", ".join(str(port) for port in REGISTRY_PORTS)
    return (
        f"table inet {NFT_TABLE} {{}}\n"
        f"delete table inet {NFT_TABLE}\n"
        f"table inet {NFT_TABLE} {{\n"
        "  set registries {\n"
        "    type ipv4_addr\n"
        f"{elements}"
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        f'    iifname "{BRIDGE}" oifname "{BRIDGE}" accept\n'
        f'    oifname "{BRIDGE}" ct state established,related accept\n'
        f'    iifname "{BRIDGE}" ip saddr {network} ip daddr @registries '
        f"tcp dport {{ {ports} }} accept\n"
        f'    iifname "{BRIDGE}" drop\n'
        f'    oifname "{BRIDGE}" drop\n'
        "  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    ip saddr {network} ip daddr @registries masquerade\n"
        "  }\n"
        "}\n"
    )


def apply_nft(network: IPv4Network, registries: list[Registry]) -> None:
    log.info("loading nftables table inet %s", NFT_TABLE)
    run(["nft", "-f", "-"], input_text=nft_rules(network, registries))


def nft_table_exists() -> bool:
    return run(["nft", "list", "table", "inet", NFT_TABLE], check=False).returncode == 0


def remove_nft() -> None:
    if nft_table_exists():
        log.info("deleting nftables table inet %s", NFT_TABLE)
        run(["nft", "delete", "table", "inet", NFT_TABLE])


def enable_forwarding(record: Path) -> None:
    """Turn IPv4 forwarding on, keeping the value it had in `record` for `down` to restore.

    The value is kept in its own file, written once: a crash that loses the state file, and the
    `up` that recovers from it, must not take "on" for the machine's own setting.
    """
    was = FORWARDING.read_text(encoding="ascii").strip()
    if not record.exists():
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(was + "\n", encoding="ascii")
    if was != "1":
        log.info("enabling IPv4 forwarding (was %s)", was)
        FORWARDING.write_text("1\n", encoding="ascii")


def restore_forwarding(record: Path) -> None:
    if not record.exists():
        return
    was = record.read_text(encoding="ascii").strip()
    if was in ("0", "1"):
        log.info("restoring IPv4 forwarding to %s", was)
        FORWARDING.write_text(f"{was}\n", encoding="ascii")
    record.unlink()
