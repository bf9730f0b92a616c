"""The directory: a bind and a search on the provider and on each replica, and how far behind.

ldap3 is a blocking client, so each server is read on the exporter's worker threads with socket
timeouts inside the budget. The bind account `cn=exporter,ou=services` may read only `mail`,
`unopsHomeServer`, `unopsAccountState` and `contextCSN` (docs/directory.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

from ldap3 import BASE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from unops.exporter.availability import ProbeResult
from unops.exporter.availability import families as probe_families
from unops.exporter.config import LDAP_SECRET, ExporterConfig, LdapTarget, read_secret
from unops.exporter.core import SourceCollector
from unops.exporter.dialogs import earliest_expiry

log = logging.getLogger(__name__)

# Entries read per page when counting mailboxes (slapd's default size limit is 500).
PAGE_SIZE = 400


@dataclass
class DirectoryReading:
    target: str
    provider: bool
    success: bool
    duration: float
    csn_time: float | None = None
    cert_expiry: float | None = None
    mailboxes: Counter[tuple[str, str]] = field(default_factory=Counter)
    error: str = ""


def csn_timestamp(csn: str) -> float:
    """The time of a contextCSN value ('20261203203456.123456Z#000000#000#000000')."""
    stamp = csn.split("#", 1)[0]
    parsed = dt.datetime.strptime(stamp, "%Y%m%d%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def read_server(
    target: LdapTarget, base_dn: str, password: str, ca_file: str | None, budget: float
) -> DirectoryReading:
    """Bind over StartTLS, read contextCSN and, on the provider, count mailboxes by server."""
    started = time.monotonic()
    user = f"cn=exporter,ou=services,{base_dn}"
    tls = Tls(ca_certs_file=ca_file, validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT)
    server = Server(target.address, port=389, tls=tls, connect_timeout=budget)
    reading = DirectoryReading(target.target, target.provider, False, 0.0)
    try:
        connection = Connection(
            server,
            user=user,
            password=password,
            # ldap3 packs this into a socket option: whole seconds only.
            receive_timeout=max(1, int(budget)),
            read_only=True,
        )
        connection.open()
        # StartTLS needs the name in the certificate; ldap3 checks it against the server name.
        server.host = target.server_name
        connection.start_tls()
        # After StartTLS ldap3 holds the verified TLS socket: its peer is the server's certificate.
        if isinstance(connection.socket, ssl.SSLSocket):
            reading.cert_expiry = earliest_expiry(connection.socket)
        if not connection.bind():
            raise LDAPException(f"bind as {user} refused: {connection.result.get('description')}")
        connection.search(base_dn, "(objectClass=*)", search_scope=BASE, attributes=["contextCSN"])
        values = connection.entries[0].entry_attributes_as_dict.get("contextCSN", [])
        if values:
            reading.csn_time = max(csn_timestamp(str(value)) for value in values)
        if target.provider:
            entries = connection.extend.standard.paged_search(
                f"ou=mailboxes,{base_dn}",
                # Mission mailboxes only: the office's own accounts (the probes) have no mission.
                "(&(objectClass=unopsMailbox)(unopsMission=*))",
                search_scope=SUBTREE,
                attributes=["unopsHomeServer", "unopsAccountState"],
                paged_size=PAGE_SIZE,
                generator=True,
            )
            for entry in entries:
                attributes = entry.get("attributes", {})
                home = first(attributes.get("unopsHomeServer")) or "none"
                state = first(attributes.get("unopsAccountState")) or "unknown"
                reading.mailboxes[(home, state)] += 1
        connection.unbind()
        reading.success = True
    except Exception as exc:
        # Whatever the server or ldap3 does wrong, the server reads as down with the reason.
        reading.error = str(exc) or type(exc).__name__
        log.debug("directory %s is down: %s", target.target, reading.error)
    reading.duration = time.monotonic() - started
    return reading


def first(value: object) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return str(value) if value is not None else None


class DirectoryCollector(SourceCollector):
    """Bind and search on every directory server; mailboxes per server from the provider."""

    name = "directory"

    def __init__(self, config: ExporterConfig) -> None:
        super().__init__()
        self.config = config

    async def gather(self, budget: float) -> list[Metric]:
        password = read_secret(self.config.fleet, LDAP_SECRET)
        if password is None:
            log.warning("secret %s is missing; the directory reads as down", LDAP_SECRET)
            return self.fallback()
        loop = asyncio.get_running_loop()
        # The socket timeouts end a dead server's read; the deadline here is the safety net.
        thread_budget = max(budget - 0.1, 0.1)
        jobs = [
            loop.run_in_executor(
                None,
                read_server,
                target,
                self.config.base_dn,
                password,
                self.config.ca_file,
                thread_budget,
            )
            for target in self.config.ldap
        ]
        readings: list[DirectoryReading] = []
        for target, job in zip(self.config.ldap, jobs, strict=True):
            try:
                readings.append(await asyncio.wait_for(asyncio.shield(job), timeout=budget))
            except TimeoutError:
                readings.append(
                    DirectoryReading(
                        target.target, target.provider, False, budget, error="timed out"
                    )
                )
        self.errors = {f"ldap {r.target}": r.error for r in readings if not r.success}
        return directory_families(readings)

    def fallback(self) -> list[Metric]:
        return directory_families(
            [DirectoryReading(t.target, t.provider, False, 0.0) for t in self.config.ldap]
        )


def directory_families(readings: list[DirectoryReading]) -> list[Metric]:
    probes = probe_families(
        [
            ProbeResult("ldap", r.target, r.success, r.duration, r.cert_expiry, error=r.error)
            for r in readings
        ]
    )
    # Success, duration and the certificate StartTLS was shown; LDAP has no HTTP status.
    result: list[Metric] = probes[:3]
    info = GaugeMetricFamily(
        "unops_ldap_server_info",
        "A directory server the exporter probes, and its role (provider or replica).",
        labels=["target", "role"],
    )
    csn = GaugeMetricFamily(
        "unops_ldap_context_csn_timestamp_seconds",
        "Time of the last change the server holds (its contextCSN).",
        labels=["target"],
    )
    lag = GaugeMetricFamily(
        "unops_ldap_replica_lag_seconds",
        "How far the replica's last change is behind the provider's.",
        labels=["replica"],
    )
    mailboxes = GaugeMetricFamily(
        "unops_directory_mailboxes",
        "Mission mailboxes in the directory by home server and account state.",
        labels=["server", "state"],
    )
    provider_time = next((r.csn_time for r in readings if r.provider and r.success), None)
    for reading in readings:
        info.add_metric([reading.target, "provider" if reading.provider else "replica"], 1.0)
        if reading.csn_time is not None:
            csn.add_metric([reading.target], reading.csn_time)
            if not reading.provider and provider_time is not None:
                lag.add_metric([reading.target], max(0.0, provider_time - reading.csn_time))
        for (server, state), count in sorted(reading.mailboxes.items()):
            mailboxes.add_metric([server, state], float(count))
    return [*result, info, csn, lag, mailboxes]
