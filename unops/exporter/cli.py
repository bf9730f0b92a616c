"""The exporter's commands: serve it, or run one probe round and print it (`unops exporter`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
from prometheus_client.parser import text_string_to_metric_families

from unops.exporter.config import ExporterConfig, config_from_estate
from unops.exporter.core import DEFAULT_BUDGET
from unops.exporter.server import build_exporter, serve
from unops.lab import paths

log = logging.getLogger(__name__)

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Exporter configuration written by the monitoring deploy; default: from the estate.",
)
_fleet_option = click.option(
    "--fleet",
    type=click.Choice(["lab", "production"]),
    default="lab",
    show_default=True,
    help="Which fleet's targets to probe when no --config is given.",
)


def load(config_path: Path | None, fleet: str) -> ExporterConfig:
    if config_path is not None:
        return ExporterConfig.load(config_path)
    from unops.estate import load_estate
    from unops.inventory import PRODUCTION_KNOWN_HOSTS

    if fleet == "lab":
        return config_from_estate(
            load_estate(), "lab", ca_file=str(paths.CA_CERT), known_hosts=str(paths.KNOWN_HOSTS)
        )
    return config_from_estate(load_estate(), "production", known_hosts=str(PRODUCTION_KNOWN_HOSTS))


@click.group()
def command() -> None:
    """The monitoring exporter: probes the estate's services as a client sees them."""


command.name = "exporter"


@command.command("serve")
@click.option(
    "--listen",
    required=True,
    help="ADDRESS:PORT to listen on, a literal address: the management address only.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Key of --tls-cert.")
@click.option(
    "--default-timeout",
    type=float,
    default=DEFAULT_BUDGET,
    show_default=True,
    help="Seconds a round may take when the request sends no scrape timeout header.",
)
@click.option(
    "--mail-flow/--no-mail-flow",
    default=True,
    show_default=True,
    help="Run the end-to-end mail flow and scanner self-test rounds in the background.",
)
@_config_option
@_fleet_option
def serve_command(
    listen: str,
    tls_cert: str | None,
    tls_key: str | None,
    default_timeout: float,
    mail_flow: bool,
    config_path: Path | None,
    fleet: str,
) -> None:
    """Serve /metrics until stopped; each scrape runs one bounded round of every probe."""
    exporter = build_exporter(load(config_path, fleet), mail_flow=mail_flow)
    httpd = serve(
        exporter, listen, tls_cert=tls_cert, tls_key=tls_key, default_budget=default_timeout
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        log.info("exporter stopping")
    finally:
        httpd.server_close()
        exporter.stop()


@command.command("probe")
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds the round may take (what a scrape timeout would allow).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the samples and errors as JSON.")
@_config_option
@_fleet_option
def probe_command(timeout: float, as_json: bool, config_path: Path | None, fleet: str) -> None:
    """Run one round of every probe (no mail flow) and print what a scrape would see."""
    exporter = build_exporter(load(config_path, fleet), mail_flow=False)
    try:
        text = exporter.scrape(timeout).decode("utf-8")
    finally:
        exporter.stop()
    samples: list[dict[str, Any]] = [
        {"name": s.name, "labels": dict(sorted(s.labels.items())), "value": s.value}
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    errors = {k: v for c in exporter.collectors for k, v in sorted(c.errors.items())}
    if as_json:
        click.echo(json.dumps({"samples": samples, "errors": errors}, indent=2))
        return
    for sample in samples:
        if sample["name"] in ("unops_probe_success", "unops_ap_up", "unops_collector_success"):
            labels = " ".join(f"{k}={v}" for k, v in sample["labels"].items())
            state = "up" if sample["value"] == 1 else "DOWN"
            click.echo(f"{state:4}  {sample['name']:26} {labels}")
    for target, error in errors.items():
        click.echo(f"down  {target}: {error}")
