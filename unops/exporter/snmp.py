"""Access points over SNMPv3 (authPriv, SHA-256 and AES-128 named explicitly), one shared engine.

pysnmp picks MD5 and DES when the protocols are left out, so both are always given. The engine is
made once, on the exporter's loop, and serves every request: the USM keys and the discovered
engine ids of the agents are kept between scrapes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC192_SHA256,
    USM_PRIV_CFB128_AES,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
)
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from unops.exporter.config import (
    SNMP_AUTH_SECRET,
    SNMP_PRIV_SECRET,
    AccessPointTarget,
    ExporterConfig,
    read_secret,
)
from unops.exporter.core import SourceCollector

log = logging.getLogger(__name__)

SYS_UPTIME_COLUMN = "1.3.6.1.2.1.1.3"  # SNMPv2-MIB::sysUpTime
SYS_UPTIME = SYS_UPTIME_COLUMN + ".0"  # its one instance, hundredths of a second
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"  # IF-MIB::ifDescr
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"  # IF-MIB::ifType
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"  # IF-MIB::ifOperStatus, 1 = up
# IANAifType ieee80211: the radios of an access point.
IF_TYPE_RADIO = 71
# What an agent answers where it has no value.
EMPTY_VALUES = (EndOfMibView, NoSuchInstance, NoSuchObject)
# Rows asked for in one GETBULK: an access point has a handful of interfaces.
BULK_REPETITIONS = 8
# Most interfaces read from one access point.
MAX_INTERFACES = 256


@dataclass
class ApReading:
    target: str
    up: bool
    duration: float
    uptime: float | None = None
    interfaces: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # name: (up, radio)
    clients: int | None = None
    error: str = ""


class SnmpPoller:
    """Reads the access points with one SNMP engine; credentials are given, never logged."""

    def __init__(self, user: str, auth_key: str, priv_key: str, context_name: str = "") -> None:
        self.auth = UsmUserData(
            user,
            authKey=auth_key,
            privKey=priv_key,
            authProtocol=USM_AUTH_HMAC192_SHA256,
            privProtocol=USM_PRIV_CFB128_AES,
        )
        # SNMPv3 context; access points answer in the default (empty) one.
        self.context_name = context_name
        self._engine: SnmpEngine | None = None

    @property
    def engine(self) -> SnmpEngine:
        # Made on first use, on the loop that runs every request.
        if self._engine is None:
            self._engine = SnmpEngine()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def read(self, ap: AccessPointTarget, budget: float) -> ApReading:
        """Uptime and interface states of one access point; a dead agent reads as down."""
        started = time.monotonic()
        try:
            reading = await asyncio.wait_for(self._read(ap, budget), timeout=budget)
        except TimeoutError:
            return ApReading(ap.target, False, time.monotonic() - started, error="timed out")
        except Exception as exc:
            # Whatever the agent answers wrong, the access point reads as down with the reason.
            log.debug("access point %s is down: %s", ap.target, exc)
            return ApReading(ap.target, False, time.monotonic() - started, error=str(exc))
        reading.duration = time.monotonic() - started
        return reading

    async def _read(self, ap: AccessPointTarget, budget: float) -> ApReading:
        # One GETBULK per access point in the common case: sysUpTime as its non-repeater (the
        # next OID after the column is sysUpTime.0) and the interface columns as repeaters;
        # more only for an agent with more interfaces than one request carries.
        transport = await UdpTransportTarget.create(
            (ap.address, ap.port), timeout=max(budget, 0.1), retries=0
        )
        context = ContextData(contextName=self.context_name)
        columns = (IF_DESCR, IF_TYPE, IF_OPER_STATUS)
        starts: tuple[str, ...] = columns
        uptime: float | None = None
        rows: dict[str, dict[str, object]] = {}
        while len(rows) < MAX_INTERFACES:
            first = uptime is None
            non_repeaters = (ObjectType(ObjectIdentity(SYS_UPTIME_COLUMN)),) if first else ()
            error, status, _, table = await bulk_cmd(
                self.engine,
                self.auth,
                transport,
                context,
                len(non_repeaters),
                BULK_REPETITIONS,
                *non_repeaters,
                *(ObjectType(ObjectIdentity(oid)) for oid in starts),
                lookupMib=False,
            )
            check(error, status)
            varbinds = list(table)
            if first:
                name, value = varbinds.pop(0)
                if str(name) != SYS_UPTIME:
                    raise SnmpAnswerError(f"no sysUpTime.0 in the answer (got {name})")
                uptime = float(int(value)) / 100.0
            last: dict[str, str] = {}
            for name, value in varbinds:
                if isinstance(value, EMPTY_VALUES):
                    continue  # past the end of the agent's tree, or a hole in its table
                oid = str(name)
                for column in columns:
                    if oid.startswith(column + "."):
                        rows.setdefault(oid[len(column) + 1 :], {})[column] = value
                        last[column] = oid
            # Done when a column ran out inside this answer (the agent went past the table).
            if len(last) < len(columns) or len(varbinds) < BULK_REPETITIONS * len(columns):
                break
            starts = tuple(last[column] for column in columns)
        interfaces: dict[str, tuple[bool, bool]] = {}
        for row in rows.values():
            if IF_DESCR in row and IF_OPER_STATUS in row:
                descr = row[IF_DESCR]
                ifname = descr.prettyPrint() if hasattr(descr, "prettyPrint") else str(descr)
                radio = int(str(row.get(IF_TYPE, 0))) == IF_TYPE_RADIO
                interfaces[ifname] = (int(str(row[IF_OPER_STATUS])) == 1, radio)
        clients = None
        if ap.clients_oid is not None:
            clients = await self._column_sum(transport, context, ap.clients_oid)
        return ApReading(
            ap.target, True, 0.0, uptime=uptime, interfaces=interfaces, clients=clients
        )

    async def _column_sum(
        self, transport: UdpTransportTarget, context: ContextData, column: str
    ) -> int | None:
        """The sum of a column's rows (clients per radio), or None if the agent has no rows."""
        total: int | None = None
        start = column
        for _ in range(MAX_INTERFACES // BULK_REPETITIONS):
            error, status, _, table = await bulk_cmd(
                self.engine,
                self.auth,
                transport,
                context,
                0,
                BULK_REPETITIONS,
                ObjectType(ObjectIdentity(start)),
                lookupMib=False,
            )
            check(error, status)
            varbinds = list(table)
            for name, value in varbinds:
                oid = str(name)
                if isinstance(value, EMPTY_VALUES) or not oid.startswith(column + "."):
                    return total
                total = (total or 0) + int(value)
                start = oid
            if len(varbinds) < BULK_REPETITIONS:
                return total
        return total


class SnmpAnswerError(Exception):
    """The agent answered with an error or not at all (wrong credentials read as no answer)."""


def check(error: object, status: object) -> None:
    if error:
        raise SnmpAnswerError(str(error))
    if status and int(str(status)) != 0:
        raise SnmpAnswerError(f"error status {status}")


def ap_families(readings: list[ApReading]) -> list[Metric]:
    up = GaugeMetricFamily(
        "unops_ap_up", "Whether the access point answered SNMPv3 (1) or not (0).", labels=["ap"]
    )
    duration = GaugeMetricFamily(
        "unops_ap_scrape_duration_seconds", "How long reading the access point took.", labels=["ap"]
    )
    uptime = GaugeMetricFamily(
        "unops_ap_uptime_seconds", "Time since the access point's agent started.", labels=["ap"]
    )
    interface = GaugeMetricFamily(
        "unops_ap_interface_up",
        "Whether the interface is operationally up (1) or not (0).",
        labels=["ap", "ifname"],
    )
    radio = GaugeMetricFamily(
        "unops_ap_radio_up",
        "Whether the radio (an ieee80211 interface) is operationally up (1) or not (0).",
        labels=["ap", "ifname"],
    )
    clients = GaugeMetricFamily(
        "unops_ap_associated_clients",
        "Wireless clients associated, where the agent exposes the count.",
        labels=["ap"],
    )
    for reading in readings:
        up.add_metric([reading.target], 1.0 if reading.up else 0.0)
        duration.add_metric([reading.target], reading.duration)
        if reading.uptime is not None:
            uptime.add_metric([reading.target], reading.uptime)
        for ifname, (is_up, is_radio) in sorted(reading.interfaces.items()):
            interface.add_metric([reading.target, ifname], 1.0 if is_up else 0.0)
            if is_radio:
                radio.add_metric([reading.target, ifname], 1.0 if is_up else 0.0)
        if reading.clients is not None:
            clients.add_metric([reading.target], float(reading.clients))
    return [up, duration, uptime, interface, radio, clients]


class AccessPointCollector(SourceCollector):
    """Every access point of the fleet, read at once; without credentials all read as down."""

    name = "access_points"

    def __init__(self, config: ExporterConfig, poller: SnmpPoller | None) -> None:
        super().__init__()
        self.config = config
        self.poller = poller

    async def gather(self, budget: float) -> list[Metric]:
        if self.poller is None:
            return self.fallback()
        poller = self.poller
        readings = await asyncio.gather(
            *(poller.read(ap, budget) for ap in self.config.access_points)
        )
        self.errors = {f"snmp {r.target}": r.error for r in readings if not r.up}
        return ap_families(list(readings))

    def fallback(self) -> list[Metric]:
        return ap_families([ApReading(ap.target, False, 0.0) for ap in self.config.access_points])


def poller_from_secrets(config: ExporterConfig) -> SnmpPoller | None:
    """The poller with the SNMPv3 user's keys from the secrets, or None if they are missing."""
    auth = read_secret(config.fleet, SNMP_AUTH_SECRET)
    priv = read_secret(config.fleet, SNMP_PRIV_SECRET)
    if auth is None or priv is None:
        log.warning(
            "SNMPv3 keys %s and %s are missing; every access point reads as down until the "
            "monitoring deploy puts them in place",
            SNMP_AUTH_SECRET,
            SNMP_PRIV_SECRET,
        )
        return None
    return SnmpPoller(config.snmp_user, auth, priv, config.snmp_context)
