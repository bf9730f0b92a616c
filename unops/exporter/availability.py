"""Availability of the mail ports and the CMS sites, probed the way a client sees them.

Metric names follow blackbox_exporter's where they overlap (`probe_success`,
`probe_duration_seconds`, `probe_ssl_earliest_cert_expiry`, `probe_http_status_code`), with
the `unops_` prefix and a `kind` label for the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from unops.exporter import dialogs
from unops.exporter.config import (
    Endpoint,
    ExporterConfig,
    MailServer,
    WebSite,
    probe_secret,
    read_secret,
)
from unops.exporter.core import SourceCollector
from unops.exporter.tls import client_context

log = logging.getLogger(__name__)

# Status codes that count as a site being up: the page or a redirect to it.
HTTP_OK = range(200, 400)


@dataclass(frozen=True)
class ProbeResult:
    kind: str
    target: str
    success: bool
    duration: float
    cert_expiry: float | None = None
    status_code: int | None = None
    error: str = ""


async def timed(
    kind: str,
    target: str,
    budget: float,
    probe: Callable[[], Awaitable[tuple[float | None, int | None]]],
) -> ProbeResult:
    """Run one probe under its deadline; any failure, including the deadline, reads as down."""
    started = time.monotonic()
    try:
        expiry, status = await asyncio.wait_for(probe(), timeout=budget)
    except (OSError, ssl.SSLError, dialogs.DialogError, TimeoutError, EOFError) as exc:
        error = str(exc) or type(exc).__name__
        log.debug("probe %s %s is down: %s", kind, target, error)
        return ProbeResult(kind, target, False, time.monotonic() - started, error=error)
    success = status is None or status in HTTP_OK
    error = "" if success else f"HTTP status {status}"
    return ProbeResult(kind, target, success, time.monotonic() - started, expiry, status, error)


class AvailabilityCollector(SourceCollector):
    """SMTP 25, submission 587 and 465, IMAP 143 and 993, an IMAP login, HTTPS of each site."""

    name = "availability"

    def __init__(self, config: ExporterConfig) -> None:
        super().__init__()
        self.config = config
        self.context = client_context(config.ca_file)
        self.helo = socket.getfqdn() or "unops-exporter"

    def targets(self) -> list[tuple[str, str]]:
        """(kind, target) of every probe, in the order they are exported."""
        pairs = [(e.kind, e.target) for e in self.config.endpoints]
        pairs += [("imap_login", m.target) for m in self.config.mail_servers]
        pairs += [("https", s.site) for s in self.config.sites]
        return pairs

    async def gather(self, budget: float) -> list[Metric]:
        jobs: list[Awaitable[ProbeResult]] = [
            timed(e.kind, e.target, budget, partial(self.probe_endpoint, e))
            for e in self.config.endpoints
        ]
        for server in self.config.mail_servers:
            password = read_secret(self.config.fleet, probe_secret(server.target))
            login = partial(self.probe_login, server, password)
            jobs.append(timed("imap_login", server.target, budget, login))
        jobs += [
            timed("https", s.site, budget, partial(self.probe_site, s)) for s in self.config.sites
        ]
        results = await asyncio.gather(*jobs)
        self.errors = {f"{r.kind} {r.target}": r.error for r in results if not r.success}
        return families(results)

    def fallback(self) -> list[Metric]:
        return families([ProbeResult(kind, target, False, 0.0) for kind, target in self.targets()])

    async def probe_endpoint(self, endpoint: Endpoint) -> tuple[float | None, int | None]:
        implicit = self.context if endpoint.tls == "implicit" else None
        session = await dialogs.Session.open(
            endpoint.address, endpoint.port, implicit, endpoint.server_name
        )
        try:
            if endpoint.kind.startswith("smtp") or endpoint.kind.startswith("submission"):
                keywords = await dialogs.smtp_hello(
                    session,
                    self.helo,
                    self.context,
                    endpoint.server_name,
                    starttls=endpoint.tls == "starttls",
                )
                if endpoint.kind != "smtp" and not any(k.startswith("AUTH") for k in keywords):
                    raise dialogs.DialogError("submission does not offer AUTH after TLS")
                expiry = session.cert_expiry()
                await dialogs.smtp_quit(session)
            else:
                imap = dialogs.Imap(session)
                await imap.greeting()
                if endpoint.tls == "starttls":
                    await imap.command("STARTTLS")
                    await session.start_tls(self.context, endpoint.server_name)
                    await imap.command("CAPABILITY")
                expiry = session.cert_expiry()
                await imap.logout()
        finally:
            await session.close()
        return expiry, None

    async def probe_login(
        self, server: MailServer, password: str | None
    ) -> tuple[float | None, int | None]:
        user = server.probe_user
        if password is None:
            raise dialogs.DialogError(f"no password for probe mailbox {user} in the secrets")
        session = await dialogs.Session.open(
            server.address, server.imaps_port, self.context, server.server_name
        )
        try:
            imap = dialogs.Imap(session)
            await imap.greeting()
            login = f"LOGIN {dialogs.imap_quote(user)} {dialogs.imap_quote(password)}"
            await imap.command(login, secret=True)
            await imap.command("SELECT INBOX")
            await imap.logout()
        finally:
            await session.close()
        return None, None

    async def probe_site(self, site: WebSite) -> tuple[float | None, int | None]:
        session = await dialogs.Session.open(site.address, site.port, self.context, site.site)
        try:
            status = await dialogs.http_get_status(session, site.site)
            expiry = session.cert_expiry()
        finally:
            await session.close()
        return expiry, status


def families(results: list[ProbeResult]) -> list[Metric]:
    labels = ["kind", "target"]
    success = GaugeMetricFamily(
        "unops_probe_success", "Whether the probe succeeded (1) or not (0).", labels=labels
    )
    duration = GaugeMetricFamily(
        "unops_probe_duration_seconds", "How long the probe took, down or not.", labels=labels
    )
    expiry = GaugeMetricFamily(
        "unops_probe_ssl_earliest_cert_expiry",
        "Expiry of the certificate the endpoint presented, in seconds since the epoch.",
        labels=labels,
    )
    status = GaugeMetricFamily(
        "unops_probe_http_status_code", "HTTP status code of the site's answer.", labels=["target"]
    )
    for result in results:
        key = [result.kind, result.target]
        success.add_metric(key, 1.0 if result.success else 0.0)
        duration.add_metric(key, result.duration)
        if result.cert_expiry is not None:
            expiry.add_metric(key, result.cert_expiry)
        if result.status_code is not None:
            status.add_metric([result.target], float(result.status_code))
    return [success, duration, expiry, status]
