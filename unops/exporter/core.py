"""The exporter's engine: one collector per source, all probed at once on a loop of their own.

A scrape asks `Exporter.scrape(timeout)` for fresh metrics. The probes of every collector run
concurrently on one asyncio loop in a background thread (which also owns the shared SNMP engine),
each bounded by a budget that fits inside the scrape timeout Prometheus sends. The thread that
serves `/metrics` only waits, bounded, for that round; a collector that overruns reads as failed
and its targets as down, never as an error of the scrape.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds kept back from Prometheus' scrape timeout for rendering and the network.
SCRAPE_MARGIN = 0.5
# Budget of a round when the request carries no timeout header (curl, a browser).
DEFAULT_BUDGET = 1.0
# No probe gets less than this, however short the scrape timeout.
MIN_BUDGET = 0.2
# Share of the round's budget given to the probes; the rest lets a collector that honours its
# deadlines finish before the round's own safety net cuts it.
PROBE_SHARE = 0.9
# Blocking clients (ldap3, paramiko) run here; sized so that dead targets cannot starve the rest.
BLOCKING_WORKERS = 48


def budget_for(header: str | None, default: float = DEFAULT_BUDGET) -> float:
    """The seconds a round may take, from the X-Prometheus-Scrape-Timeout-Seconds header."""
    if header:
        try:
            timeout = float(header)
        except ValueError:
            log.warning("ignoring scrape timeout header %r: not a number", header)
        else:
            if timeout > 0:
                return max(MIN_BUDGET, timeout - SCRAPE_MARGIN)
    return default


async def bounded(awaitable: Awaitable[T], budget: float) -> T:
    """Await with a deadline; the caller turns the TimeoutError into a target that is down."""
    return await asyncio.wait_for(awaitable, timeout=budget)


class SourceCollector(Collector):
    """One source of metrics (mail ports, SNMP, backups...). Subclasses implement `gather`.

    `gather(budget)` probes the source and returns the metric families of this round; it must
    treat each dead target as down rather than raise. `fallback()` says what the metrics are
    when the whole round of this collector failed or overran (by default: nothing).
    """

    name = "source"

    def __init__(self) -> None:
        self._families: list[Metric] = []
        self._lock = threading.Lock()
        # Why each target of the last round was down ("kind target": reason), for `probe --json`.
        self.errors: dict[str, str] = {}

    async def gather(self, budget: float) -> list[Metric]:
        raise NotImplementedError

    def fallback(self) -> list[Metric]:
        return []

    def publish(self, families: list[Metric]) -> None:
        with self._lock:
            self._families = families

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            return list(self._families)

    def describe(self) -> Iterable[Metric]:
        # Names are only known after a round; describing nothing keeps registration cheap.
        return []


class SelfCollector(Collector):
    """The exporter's own health: for each collector, whether its last round worked and how long."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def record(self, name: str, success: bool, duration: float) -> None:
        with self._lock:
            self.results[name] = (success, duration)

    def collect(self) -> Iterable[Metric]:
        success = GaugeMetricFamily(
            "unops_collector_success",
            "Whether the collector's last round finished inside its budget (1) or not (0).",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "unops_collector_duration_seconds",
            "How long the collector's last round took.",
            labels=["collector"],
        )
        with self._lock:
            for name, (ok, seconds) in sorted(self.results.items()):
                success.add_metric([name], 1.0 if ok else 0.0)
                duration.add_metric([name], seconds)
        return [success, duration]

    def describe(self) -> Iterable[Metric]:
        return []


class MergedView:
    """The registry's metrics with families of the same name joined into one.

    Several collectors export `unops_probe_success` (mail ports, the directory, backup records),
    and the text format allows each family once.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for family in self.registry.collect():
            if family.name in merged:
                merged[family.name].samples.extend(family.samples)
            else:
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = list(family.samples)
                merged[family.name] = copy
        return list(merged.values())


class Exporter:
    """Owns the loop thread, the registry and the collectors; `scrape` returns the exposition."""

    def __init__(self, collectors: Sequence[SourceCollector]) -> None:
        self.collectors = list(collectors)
        self.registry = CollectorRegistry(auto_describe=False)
        self.self_collector = SelfCollector()
        for collector in self.collectors:
            self.registry.register(collector)
        self.registry.register(self.self_collector)
        self.executor = ThreadPoolExecutor(BLOCKING_WORKERS, thread_name_prefix="unops-probe")
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(self.executor)
        self._thread = threading.Thread(target=self._run_loop, name="unops-exporter", daemon=True)
        self._round_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._started = False

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def add_background(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A long-running coroutine (the mail flow rounds) started on the loop with the exporter."""
        self._background.append(job)
        if self._started:
            asyncio.run_coroutine_threadsafe(job(), self.loop)

    def start(self) -> None:
        # Two first scrapes may arrive at once: only one of them starts the loop thread.
        with self._start_lock:
            if self._started:
                return
            self._thread.start()
            self._started = True
            for job in self._background:
                asyncio.run_coroutine_threadsafe(job(), self.loop)

    def stop(self) -> None:
        if not self._started:
            return

        async def cancel_all() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=5)
        except (FutureTimeout, RuntimeError):
            log.warning("exporter tasks did not stop within 5 s; leaving them to the process exit")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._started = False

    async def _run_one(self, collector: SourceCollector, budget: float) -> None:
        started = time.monotonic()
        try:
            families = await asyncio.wait_for(
                collector.gather(budget * PROBE_SHARE), timeout=budget
            )
        except TimeoutError:
            log.warning(
                "collector %s overran its %.1f s budget; its targets read as down",
                collector.name,
                budget,
            )
            collector.publish(collector.fallback())
            ok = False
        except Exception:
            # A collector's own bug must not take the others down with it: logged, marked failed.
            log.exception("collector %s failed; its targets read as down", collector.name)
            collector.publish(collector.fallback())
            ok = False
        else:
            collector.publish(families)
            ok = True
        self.self_collector.record(collector.name, ok, time.monotonic() - started)

    async def run_round(self, budget: float) -> None:
        await asyncio.gather(*(self._run_one(c, budget) for c in self.collectors))

    def refresh(self, budget: float) -> None:
        """Run one round of every collector on the loop thread; wait at most the budget.

        Scrapes that overlap (two Prometheus servers, a person with curl) share the round that
        is running rather than queueing new rounds behind it past their own deadlines.
        """
        self.start()
        if not self._round_lock.acquire(blocking=False):
            # A round is running: its results, when it ends, are as fresh as a new round's.
            if self._round_lock.acquire(timeout=budget):
                self._round_lock.release()
            else:
                log.warning("the running probe round outlasted this scrape; serving the last")
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self.run_round(budget), self.loop)
            try:
                # The collectors' own deadlines end the round; this wait is the safety net.
                future.result(timeout=budget + SCRAPE_MARGIN / 2)
            except FutureTimeout:
                future.cancel()
                log.warning("probe round overran %.1f s; serving what was gathered", budget)
        finally:
            self._round_lock.release()

    def scrape(self, budget: float) -> bytes:
        """Fresh metrics in the Prometheus text format, within `budget` plus a small margin."""
        self.refresh(budget)
        return generate_latest(MergedView(self.registry))

    def call_blocking(self, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a blocking client call on the exporter's worker threads, awaitable from the loop."""
        return self.loop.run_in_executor(self.executor, func, *args)
