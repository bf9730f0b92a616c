"""The lab's resolver: authoritative for the lab's zones, REFUSED for every other name, at once.

It answers for the office zone (every lab host by fqdn, and by short name), for every mission
mail domain (MX 10 to each mail server, `mail.<domain>` A to the server that holds most of
the domain's mailboxes), the
reverse names of the lab addresses, and every record deploys publish as JSON files in
DNS_RECORDS_DIR (re-read when that folder changes). Nothing is ever forwarded.

Run by `unops lab up` as its own process: `python -m unops.lab.dns --listen 198.18.0.1`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from dnslib import CNAME, MX, NS, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from unops.errors import LabError
from unops.estate import Estate, load_estate
from unops.lab import paths

log = logging.getLogger(__name__)

RECORD_TYPES = ("A", "TXT", "MX", "CNAME", "PTR")
DEFAULT_TTL = 300


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    ttl: int = DEFAULT_TTL


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def reverse_name(address: IPv4Address) -> str:
    return ".".join(reversed(str(address).split("."))) + ".in-addr.arpa"


def estate_records(estate: Estate) -> tuple[list[str], list[Record]]:
    """The lab's zones and their records, computed from the estate."""
    hosts = estate.lab_hosts()
    network: IPv4Network = estate.site.lab.network
    reverse_zone = ".".join(reversed(str(network.network_address).split(".")[:3])) + ".in-addr.arpa"
    zones = [estate.zone, reverse_zone, *estate.mission_mail_domains]
    records = [Record(h.fqdn, "A", str(h.address)) for h in hosts]
    records += [Record(reverse_name(h.address), "PTR", h.fqdn) for h in hosts]
    bridge = estate.site.lab.bridge_address
    records.append(Record(estate.fqdn("ns"), "A", str(bridge)))

    servers = {h.name: h.lab_address for h in estate.hosts_with_role("mail") if h.lab_address}
    mail_servers = sorted(servers)
    homes: dict[str, Counter[str]] = defaultdict(Counter)
    for box in estate.mailboxes:
        homes[box.address.partition("@")[2]][box.server] += 1
    for index, domain in enumerate(estate.mail_domains):
        for server in mail_servers:
            records.append(Record(domain, "MX", f"10 {estate.fqdn(server)}"))
        if mail_servers:
            counted = [s for s, _ in homes[domain].most_common() if s in mail_servers]
            home = counted[0] if counted else mail_servers[index % len(mail_servers)]
            records.append(Record(f"mail.{domain}", "A", str(servers[home])))
    return zones, records


def read_record_files(folder: Path) -> list[Record]:
    """Records deploys published: each *.json file a list of {name, type, value, ttl}."""
    records: list[Record] = []
    if not folder.is_dir():
        return records
    for file in sorted(folder.glob("*.json")):
        try:
            entries = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(entries, list):
                raise ValueError("the file must hold a JSON list of records")
            for position, entry in enumerate(entries):
                records.append(_record(entry, file, position))
        except (ValueError, LabError) as exc:
            # One bad file must not take the others down; its records are left out until fixed.
            log.error("%s: %s; its records are not served until it is fixed", file, exc)
    return records


def _record(entry: Any, file: Path, position: int) -> Record:
    if not isinstance(entry, dict) or not {"name", "type", "value"} <= entry.keys():
        raise LabError(f"record {position} must be an object with name, type and value")
    kind = str(entry["type"]).upper()
    if kind not in RECORD_TYPES:
        raise LabError(f"record {position} has type {kind!r}; accepted: {', '.join(RECORD_TYPES)}")
    ttl = int(entry.get("ttl", DEFAULT_TTL))
    return Record(_norm(str(entry["name"])), kind, str(entry["value"]), ttl)


def _rdata(record: Record) -> Any:
    if record.type == "A":
        return A(record.value)
    if record.type == "MX":
        preference, _, target = record.value.partition(" ")
        return MX(target, int(preference))
    if record.type == "CNAME":
        return CNAME(record.value)
    if record.type == "PTR":
        return PTR(record.value)
    # TXT strings are at most 255 bytes each (RFC 1035); a DKIM key is split into several.
    text = record.value
    return TXT([text[i : i + 255] for i in range(0, len(text), 255)] or [""])


class LabResolver(BaseResolver):  # type: ignore[misc]
    """Answers from the estate's records and the published files; refuses all else."""

    def __init__(self, estate: Estate, records_dir: Path = paths.DNS_RECORDS_DIR) -> None:
        self.zone = estate.zone
        self.zones, self.base = estate_records(estate)
        self.records_dir = records_dir
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] = ()
        self._table: dict[str, list[Record]] = {}
        self.refresh()

    def _folder_signature(self) -> tuple[Any, ...]:
        try:
            entries = sorted(os.scandir(self.records_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return ()
        return tuple((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries)

    def refresh(self) -> None:
        signature = self._folder_signature()
        with self._lock:
            if signature == self._signature and self._table:
                return
            table: dict[str, list[Record]] = defaultdict(list)
            for record in [*self.base, *read_record_files(self.records_dir)]:
                table[_norm(record.name)].append(record)
            self._table, self._signature = dict(table), signature
        log.info("serving %d names (%d published files)", len(table), len(signature))

    def _zone_of(self, name: str) -> str | None:
        matches = [z for z in self.zones if name == z or name.endswith("." + z)]
        return max(matches, key=len) if matches else None

    def _soa(self, zone: str) -> RR:
        mname, rname = f"ns.{self.zone}", f"hostmaster.{self.zone}"
        return RR(zone, QTYPE.SOA, ttl=60, rdata=SOA(mname, rname, (1, 3600, 600, 86400, 60)))

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        self.refresh()
        reply = request.reply(ra=0, aa=0)
        qname = _norm(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        # A short name ("mail1") is a lab host in the office zone, as a search domain would say;
        # a bare name that is no lab host is refused like any other outside name.
        name = qname if "." in qname else f"{qname}.{self.zone}"
        if "." not in qname and name not in self._table:
            name = qname
        # A published record outside the lab's zones is still answered (its name is its zone).
        zone = self._zone_of(name) or (name if name in self._table else None)
        if zone is None:
            reply.header.rcode = RCODE.REFUSED
            return reply
        reply.header.aa = 1
        records = self._table.get(name, [])
        # NXDOMAIN only for a name that holds nothing, not even names below it (RFC 8020).
        below = any(key.endswith("." + name) for key in self._table)
        if not records and not below and name != zone:
            reply.header.rcode = RCODE.NXDOMAIN
        answered = self._answer(reply, qname, name, qtype, records, depth=0)
        if qtype in ("SOA", "ANY") and name == zone:
            reply.add_answer(self._soa(zone))
            answered = True
        elif qtype == "NS" and name == zone:
            reply.add_answer(RR(zone, QTYPE.NS, ttl=DEFAULT_TTL, rdata=NS(f"ns.{self.zone}")))
            answered = True
        if not answered:
            reply.add_auth(self._soa(zone))
        return reply

    def _answer(
        self, reply: DNSRecord, owner: str, name: str, qtype: str, records: list[Record], depth: int
    ) -> bool:
        answered = False
        for record in records:
            if record.type == qtype or qtype == "ANY":
                reply.add_answer(
                    RR(owner, getattr(QTYPE, record.type), ttl=record.ttl, rdata=_rdata(record))
                )
                answered = True
            elif record.type == "CNAME" and depth < 8:
                reply.add_answer(RR(owner, QTYPE.CNAME, ttl=record.ttl, rdata=_rdata(record)))
                target = _norm(record.value)
                self._answer(reply, target, target, qtype, self._table.get(target, []), depth + 1)
                answered = True
        return answered


def serve(listen: str, port: int, estate: Estate | None = None) -> None:
    """Serve until killed, on UDP and TCP."""
    resolver = LabResolver(estate or load_estate())
    quiet = DNSLogger(log="-request,-reply,-truncated,-data,-recv,-send", prefix=False)
    servers = [
        DNSServer(resolver, address=listen, port=port, tcp=tcp, logger=quiet)
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    log.info("lab resolver listening on %s:%s (UDP and TCP)", listen, port)
    while all(server.isAlive() for server in servers):
        time.sleep(1)
    raise LabError("a lab resolver thread stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="The lab's resolver (started by `unops lab up`).")
    parser.add_argument("--listen", required=True, help="address to listen on, the lab bridge's")
    parser.add_argument("--port", type=int, default=53, help="UDP and TCP port (default 53)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(args.listen, args.port)


if __name__ == "__main__":
    main()
