"""The exporter assembled from its configuration, and the HTTP(S) server that exposes it."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from ipaddress import ip_address
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import CONTENT_TYPE_LATEST, ThreadingWSGIServer

from unops.errors import ExporterError
from unops.exporter.availability import AvailabilityCollector
from unops.exporter.backups import BackupCollector
from unops.exporter.config import ExporterConfig
from unops.exporter.core import DEFAULT_BUDGET, Exporter, SourceCollector, budget_for
from unops.exporter.directory import DirectoryCollector
from unops.exporter.mailflow import MailFlowCollector
from unops.exporter.queue import MailQueueCollector
from unops.exporter.snmp import AccessPointCollector, poller_from_secrets

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def build_exporter(config: ExporterConfig, *, mail_flow: bool = True) -> Exporter:
    """One collector per source, on the exporter's own registry; the mail flow in the background."""
    flow = MailFlowCollector(config)
    collectors: list[SourceCollector] = [
        AvailabilityCollector(config),
        DirectoryCollector(config),
        AccessPointCollector(config, poller_from_secrets(config)),
        BackupCollector(config),
        MailQueueCollector(config),
        flow,
    ]
    exporter = Exporter(collectors)
    if mail_flow and config.mail_servers:
        exporter.add_background(flow.run_forever)
    return exporter


def make_app(
    exporter: Exporter, default_budget: float = DEFAULT_BUDGET
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app: `/metrics` runs one bounded round; every other path is a short index."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") != "/metrics":
            body = b"unops exporter: metrics at /metrics\n"
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [body]
        header = environ.get("HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS")
        output = exporter.scrape(budget_for(header, default_budget))
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [output]

    return app


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def parse_listen(listen: str) -> tuple[str, int]:
    """ADDRESS:PORT (IPv4) or [ADDRESS]:PORT (IPv6), with a literal address."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ip_address(host)
        number = int(port)
        if not sep or not 0 <= number < 65536:
            raise ValueError(port)
    except ValueError:
        raise ExporterError(
            f"--listen {listen!r} is not ADDRESS:PORT with a literal address, such as "
            "198.18.0.30:9470; the exporter listens on the management address only"
        ) from None
    return host, number


def serve(
    exporter: Exporter,
    listen: str,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    default_budget: float = DEFAULT_BUDGET,
) -> ThreadingWSGIServer:
    """Start serving on a thread per request; returns the server (call serve_forever on it)."""
    host, port = parse_listen(listen)
    if (tls_cert is None) != (tls_key is None):
        raise ExporterError("--tls-cert and --tls-key go together: give both or neither")

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Request threads must never keep the process alive at shutdown.
        daemon_threads = True

    httpd = make_server(host, port, make_app(exporter, default_budget), Server, _QuietHandler)
    if tls_cert and tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ExporterError(
                f"cannot load TLS certificate {tls_cert} / key {tls_key}: {exc}"
            ) from exc
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    exporter.start()
    log.info("exporter listening on %s:%s (%s)", host, port, "https" if tls_cert else "http")
    return httpd
