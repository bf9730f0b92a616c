"""The Postfix queues of each mail server: how many messages wait in each, read over SSH.

Read with the same restricted key as the backup records (unops.exporter.hostread); the host's
forced command counts the files of each queue folder and prints `<queue> <count>` lines.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from unops.exporter.availability import ProbeResult
from unops.exporter.availability import families as probe_families
from unops.exporter.config import RECORDS_KEY_SECRET, ExporterConfig, read_secret
from unops.exporter.core import SourceCollector
from unops.exporter.hostread import Answer, read_remote

log = logging.getLogger(__name__)

QUEUES = ("active", "deferred", "hold", "incoming")


def parse_queues(text: str) -> dict[str, int]:
    """`deferred 3` lines into {"deferred": 3}; unknown queues and bad lines are ignored."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        name, _, count = line.strip().partition(" ")
        if name in QUEUES and count.strip().isdigit():
            counts[name] = int(count)
    return counts


class MailQueueCollector(SourceCollector):
    name = "mail_queue"

    def __init__(self, config: ExporterConfig) -> None:
        super().__init__()
        self.config = config

    async def gather(self, budget: float) -> list[Metric]:
        key = read_secret(self.config.fleet, RECORDS_KEY_SECRET)
        if key is None:
            return self.fallback()
        loop = asyncio.get_running_loop()
        thread_budget = max(budget - 0.1, 0.1)
        servers = self.config.mail_servers
        jobs = [
            loop.run_in_executor(
                None,
                read_remote,
                s.address,
                22,
                key,
                self.config.known_hosts,
                "queue",
                thread_budget,
            )
            for s in servers
        ]
        answers: list[Answer] = []
        for job in jobs:
            try:
                answers.append(await asyncio.wait_for(asyncio.shield(job), timeout=budget))
            except TimeoutError:
                answers.append(Answer(False, "", budget, "timed out"))
        self.errors = {
            f"mail_queue {s.target}": a.error
            for s, a in zip(servers, answers, strict=True)
            if not a.ok
        }
        return queue_families([s.target for s in servers], answers)

    def fallback(self) -> list[Metric]:
        targets = [s.target for s in self.config.mail_servers]
        return queue_families(targets, [Answer(False, "", 0.0) for _ in targets])


def queue_families(targets: list[str], answers: list[Answer]) -> list[Metric]:
    messages = GaugeMetricFamily(
        "unops_mail_queue_messages",
        "Messages waiting in each Postfix queue of the server.",
        labels=["server", "queue"],
    )
    results = []
    for target, answer in zip(targets, answers, strict=True):
        results.append(ProbeResult("mail_queue", target, answer.ok, answer.duration))
        for queue, count in sorted(parse_queues(answer.text).items()):
            messages.add_metric([target, queue], float(count))
    return [*probe_families(results)[:2], messages]
