"""Backups, from the record chain each backed-up host keeps (`/var/lib/unops/backup/records.jsonl`).

The chain is read over SSH with the exporter's restricted key (unops.exporter.hostread): the
host prints the file and can be asked for nothing else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from unops.chain import verify_lines
from unops.exporter.availability import ProbeResult
from unops.exporter.availability import families as probe_families
from unops.exporter.config import RECORDS_KEY_SECRET, BackupHost, ExporterConfig, read_secret
from unops.exporter.core import SourceCollector
from unops.exporter.hostread import read_remote

log = logging.getLogger(__name__)


@dataclass
class BackupReading:
    target: str
    success: bool
    duration: float
    records: list[dict[str, Any]] = field(default_factory=list)
    intact: bool | None = None
    error: str = ""


def record_time(record: dict[str, Any]) -> float | None:
    value = record.get("time")
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse_chain(target: str, text: str, duration: float) -> BackupReading:
    report = verify_lines(text.splitlines())
    return BackupReading(target, True, duration, report.records, report.intact)


def fetch_records(
    host: BackupHost, key_text: str, known_hosts: str | None, budget: float
) -> BackupReading:
    """The host's record chain, through the restricted key; a dead host reads as down."""
    answer = read_remote(host.address, host.port, key_text, known_hosts, "records", budget)
    if not answer.ok:
        log.debug("backup records of %s unreadable: %s", host.target, answer.error)
        return BackupReading(host.target, False, answer.duration, error=answer.error)
    return parse_chain(host.target, answer.text, answer.duration)


class BackupCollector(SourceCollector):
    """Freshness, result, size, verification and drills of each host's backups."""

    name = "backups"

    def __init__(self, config: ExporterConfig) -> None:
        super().__init__()
        self.config = config

    async def gather(self, budget: float) -> list[Metric]:
        key = read_secret(self.config.fleet, RECORDS_KEY_SECRET)
        if key is None:
            log.warning("key %s is missing; backup records read as down", RECORDS_KEY_SECRET)
            return self.fallback()
        loop = asyncio.get_running_loop()
        thread_budget = max(budget - 0.1, 0.1)
        cfg = self.config
        jobs = [
            loop.run_in_executor(None, fetch_records, h, key, cfg.known_hosts, thread_budget)
            for h in cfg.backup_hosts
        ]
        readings: list[BackupReading] = []
        for host, job in zip(cfg.backup_hosts, jobs, strict=True):
            try:
                readings.append(await asyncio.wait_for(asyncio.shield(job), timeout=budget))
            except TimeoutError:
                readings.append(BackupReading(host.target, False, budget, error="timed out"))
        self.errors = {f"backup_records {r.target}": r.error for r in readings if not r.success}
        return backup_families(readings)

    def fallback(self) -> list[Metric]:
        return backup_families(
            [BackupReading(h.target, False, 0.0) for h in self.config.backup_hosts]
        )


def last(
    records: list[dict[str, Any]], kind: str, result: str | None = None
) -> dict[str, Any] | None:
    for record in reversed(records):
        if record.get("kind") == kind and (result is None or record.get("result") == result):
            found: dict[str, Any] = record
            return found
    return None


def backup_families(readings: list[BackupReading]) -> list[Metric]:
    def gauge(name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=["host"])

    success_time = gauge(
        "unops_backup_last_success_timestamp_seconds",
        "Time of the last successful backup (0 if none is recorded).",
    )
    run_time = gauge("unops_backup_last_run_timestamp_seconds", "Time of the last backup run.")
    run_ok = gauge("unops_backup_last_run_success", "Whether the last backup run succeeded.")
    run_duration = gauge("unops_backup_last_run_duration_seconds", "Duration of the last run.")
    size = gauge("unops_backup_size_bytes", "Data added by the last successful backup.")
    check_time = gauge(
        "unops_backup_last_check_timestamp_seconds", "Time of the last verification (0 if none)."
    )
    check_ok = gauge("unops_backup_last_check_success", "Whether the last verification passed.")
    drill_time = gauge(
        "unops_backup_last_drill_timestamp_seconds", "Time of the last restore drill (0 if none)."
    )
    drill_ok = gauge("unops_backup_last_drill_success", "Whether the last restore drill passed.")
    intact = gauge("unops_backup_chain_intact", "Whether the host's record chain is intact.")
    records = gauge("unops_backup_records", "Records in the host's chain.")

    for reading in readings:
        if not reading.success:
            continue
        host = [reading.target]
        chain = reading.records
        intact.add_metric(host, 1.0 if reading.intact else 0.0)
        records.add_metric(host, float(len(chain)))
        ok_backup = last(chain, "backup", "ok")
        success_time.add_metric(host, (record_time(ok_backup) or 0.0) if ok_backup else 0.0)
        if ok_backup and isinstance(ok_backup.get("bytes"), int):
            size.add_metric(host, float(ok_backup["bytes"]))
        run = last(chain, "backup")
        if run:
            run_time.add_metric(host, record_time(run) or 0.0)
            run_ok.add_metric(host, 1.0 if run.get("result") == "ok" else 0.0)
            run_duration.add_metric(host, float(run.get("duration_seconds") or 0.0))
        for kind, when, ok in (("check", check_time, check_ok), ("drill", drill_time, drill_ok)):
            record = last(chain, kind)
            when.add_metric(host, (record_time(record) or 0.0) if record else 0.0)
            if record:
                ok.add_metric(host, 1.0 if record.get("result") == "ok" else 0.0)
    probes = probe_families(
        [
            ProbeResult("backup_records", r.target, r.success, r.duration, error=r.error)
            for r in readings
        ]
    )
    return [
        *probes[:2],
        success_time,
        run_time,
        run_ok,
        run_duration,
        size,
        check_time,
        check_ok,
        drill_time,
        drill_ok,
        intact,
        records,
    ]
