"""Grafana dashboards for on-call and for backups, generated so that their queries are tested.

`python -m unops.exporter.dashboards` writes monitors/dashboards/*.json; the unit tests check
that the committed files are what this module makes and that every query parses (promtool).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unops import PROJECT_ROOT

DASHBOARDS_DIR = PROJECT_ROOT / "monitors" / "dashboards"
# Grafana's JSON model version these dashboards are written for (Grafana 9 and later).
SCHEMA_VERSION = 37


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    legend: str
    kind: str = "timeseries"  # or "stat", "table"
    unit: str = "short"
    description: str = ""


ON_CALL = (
    Panel(
        "Mail ports down",
        'count(unops_probe_success{kind=~"smtp|submission|submissions|imap|imaps|imap_login"} == 0)'
        " or vector(0)",
        "down",
        "stat",
        description="Mail probes failing now; any value above 0 pages on-call.",
    ),
    Panel(
        "Mail probes by server",
        'min by (target) (unops_probe_success{kind=~"smtp|submission|submissions|imap|imaps"})',
        "{{target}}",
        description="1 when every mail port of the server answers as a client expects.",
    ),
    Panel(
        "Mail flow",
        "unops_mail_flow_success",
        "{{source}} to {{destination}}",
        description="Whether the last probe message reached the next server's probe mailbox.",
    ),
    Panel(
        "Mail flow delivery time",
        "unops_mail_flow_duration_seconds",
        "{{source}} to {{destination}}",
        unit="s",
    ),
    Panel(
        "Scanner self-test",
        "unops_scanner_selftest_success",
        "{{server}} {{test}}",
        "stat",
        description="1 when the server refused the EICAR or GTUBE test message, as it must.",
    ),
    Panel(
        "Deferred messages",
        'unops_mail_queue_messages{queue="deferred"}',
        "{{server}}",
        description="Above 30 for 15 minutes pages on-call.",
    ),
    Panel(
        "Days until certificates expire",
        "(unops_probe_ssl_earliest_cert_expiry - time()) / 86400",
        "{{kind}} {{target}}",
        "table",
        unit="d",
    ),
    Panel(
        "Directory replicas behind",
        "unops_ldap_replica_lag_seconds",
        "{{replica}}",
        unit="s",
    ),
    Panel("Access points up", "unops_ap_up", "{{ap}}", "stat"),
    Panel(
        "Wi-Fi clients per access point",
        "unops_ap_associated_clients",
        "{{ap}}",
        description="Clients associated with each access point, where its agent counts them: "
        "where delegates gather, and where coverage must grow when rooms move.",
    ),
    Panel(
        "Exporter collectors",
        "unops_collector_duration_seconds",
        "{{collector}}",
        unit="s",
        description="Time each collector's round took; a failed round reads in the next panel.",
    ),
    Panel(
        "Collectors failing",
        "count(unops_collector_success == 0) or vector(0)",
        "failing",
        "stat",
    ),
)

BACKUPS = (
    Panel(
        "Hours since the last successful backup",
        "(time() - unops_backup_last_success_timestamp_seconds) / 3600",
        "{{host}}",
        "table",
        unit="h",
        description="Late after 26 h (service desk), pages after 50 h.",
    ),
    Panel("Last run succeeded", "unops_backup_last_run_success", "{{host}}", "stat"),
    Panel("Last run duration", "unops_backup_last_run_duration_seconds", "{{host}}", unit="s"),
    Panel("Data added by the last backup", "unops_backup_size_bytes", "{{host}}", unit="bytes"),
    Panel("Last verification passed", "unops_backup_last_check_success", "{{host}}", "stat"),
    Panel(
        "Hours since the last verification",
        "(time() - unops_backup_last_check_timestamp_seconds) / 3600",
        "{{host}}",
        "table",
        unit="h",
    ),
    Panel("Last restore drill passed", "unops_backup_last_drill_success", "{{host}}", "stat"),
    Panel(
        "Days since the last restore drill",
        "(time() - unops_backup_last_drill_timestamp_seconds) / 86400",
        "{{host}}",
        "table",
        unit="d",
    ),
    Panel(
        "Record chain intact",
        "unops_backup_chain_intact",
        "{{host}}",
        "stat",
        description="0 means a record was edited, removed or reordered: tell the auditor.",
    ),
    Panel(
        "Records readable",
        'unops_probe_success{kind="backup_records"}',
        "{{target}}",
        "stat",
    ),
)

DASHBOARDS = {"on-call": ("unops: on-call", ON_CALL), "backups": ("unops: backups", BACKUPS)}


def panel_json(panel: Panel, number: int) -> dict[str, Any]:
    width = 12 if panel.kind == "timeseries" else 8
    per_row = 24 // width
    return {
        "id": number + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {
            "h": 8,
            "w": width,
            "x": (number % per_row) * width,
            "y": (number // per_row) * 8,
        },
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": panel.expr, "legendFormat": panel.legend}],
    }


def dashboard(uid: str) -> dict[str, Any]:
    title, panels = DASHBOARDS[uid]
    return {
        "uid": f"unops-{uid}",
        "title": title,
        "tags": ["unops"],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data"}
            ]
        },
        "panels": [panel_json(panel, n) for n, panel in enumerate(panels)],
    }


def render(uid: str) -> str:
    return json.dumps(dashboard(uid), indent=2, sort_keys=True) + "\n"


def write(folder: Path = DASHBOARDS_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for uid in DASHBOARDS:
        path = folder / f"{uid}.json"
        path.write_text(render(uid), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARDS_DIR):
        print(path)
