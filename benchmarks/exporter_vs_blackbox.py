"""One full probe round of the lab's mail endpoints: the unops exporter against blackbox_exporter.

Both run on loopback on the control machine and probe the same endpoints of the running lab the
same way (SMTP with STARTTLS on 25 and 587, implicit TLS on 465 and 993, IMAP with STARTTLS on
143, the lab CA trusted): the exporter in one scrape, blackbox_exporter in one /probe request per
endpoint, all sent at once as Prometheus would. Printed for each: wall time of the round, CPU
time the process spent on it, and its resident memory after it.

    .venv/bin/python benchmarks/exporter_vs_blackbox.py [--rounds 5]

Needs the lab up (`unops lab up`) and Debian's prometheus-blackbox-exporter (Makefile).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from _measure import fetch, measure, require_lab_network, start_exporter, wait_listening

from unops.estate import load_estate
from unops.exporter.config import config_from_estate
from unops.lab import paths

EXPORTER_PORT = 19470
BLACKBOX_PORT = 19115
TIMEOUT = 10.0

# blackbox_exporter modules that speak what the unops probes speak.
BLACKBOX_MODULES = {
    "smtp": {
        "prober": "tcp",
        "timeout": "9s",
        "tcp": {
            "tls_config": {"ca_file": "CA"},
            "query_response": [
                {"expect": "^220"},
                {"send": "EHLO unops-benchmark\r"},
                {"expect": "^250-STARTTLS"},
                {"expect": "^250 "},
                {"send": "STARTTLS\r"},
                {"expect": "^220"},
                {"starttls": True},
                {"send": "EHLO unops-benchmark\r"},
                {"expect": "^250 "},
                {"send": "QUIT\r"},
            ],
        },
    },
    "tls_banner": {
        "prober": "tcp",
        "timeout": "9s",
        "tcp": {
            "tls": True,
            "tls_config": {"ca_file": "CA"},
            "query_response": [{"expect": "^(220|\\* OK)"}],
        },
    },
    "imap": {
        "prober": "tcp",
        "timeout": "9s",
        "tcp": {
            "tls_config": {"ca_file": "CA"},
            "query_response": [
                {"expect": "^\\* OK"},
                {"send": "a1 STARTTLS\r"},
                {"expect": "^a1 OK"},
                {"starttls": True},
                {"send": "a2 LOGOUT\r"},
            ],
        },
    },
}
MODULE_OF = {
    "smtp": "smtp",
    "submission": "smtp",
    "submissions": "tls_banner",
    "imap": "imap",
    "imaps": "tls_banner",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="Rounds measured for each (median).")
    args = parser.parse_args()
    require_lab_network()
    blackbox = shutil.which("prometheus-blackbox-exporter")
    if blackbox is None:
        sys.exit("prometheus-blackbox-exporter is missing: make host-packages")

    config = config_from_estate(load_estate(), "lab", ca_file=str(paths.CA_CERT))
    # The same endpoints for both: the mail ports (blackbox has no LDAP, SNMPv3 or SSH prober).
    config = replace(config, sites=(), ldap=(), mail_servers=(), access_points=(), backup_hosts=())
    endpoints = config.endpoints

    with tempfile.TemporaryDirectory() as scratch:
        config_file = Path(scratch) / "exporter.json"
        config_file.write_text(config.to_json())
        modules = json.loads(
            json.dumps(BLACKBOX_MODULES).replace('"CA"', json.dumps(str(paths.CA_CERT)))
        )
        blackbox_file = Path(scratch) / "blackbox.yml"
        blackbox_file.write_text(json.dumps({"modules": modules}))

        exporter = start_exporter(config_file, EXPORTER_PORT)
        bb = subprocess.Popen(
            [
                blackbox,
                f"--config.file={blackbox_file}",
                f"--web.listen-address=127.0.0.1:{BLACKBOX_PORT}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(f"http://127.0.0.1:{EXPORTER_PORT}/", "the exporter")
            wait_listening(f"http://127.0.0.1:{BLACKBOX_PORT}/", "blackbox_exporter")
            urls = [
                f"http://127.0.0.1:{BLACKBOX_PORT}/probe?module={MODULE_OF[e.kind]}"
                f"&target={e.address}:{e.port}"
                for e in endpoints
            ]
            pool = ThreadPoolExecutor(len(urls))

            def exporter_round() -> None:
                fetch(f"http://127.0.0.1:{EXPORTER_PORT}/metrics", TIMEOUT)

            def blackbox_round() -> None:
                list(pool.map(fetch, urls))

            # One warm-up round each: imports, TLS contexts, connection setup.
            exporter_round()
            blackbox_round()
            results: dict[str, list[tuple[float, float, float]]] = {
                "unops exporter": [],
                "blackbox_exporter": [],
            }
            for _ in range(args.rounds):
                results["unops exporter"].append(measure(exporter.pid, exporter_round))
                results["blackbox_exporter"].append(measure(bb.pid, blackbox_round))
            text = fetch(f"http://127.0.0.1:{EXPORTER_PORT}/metrics", TIMEOUT).decode()
            up = [
                s
                for s in text.splitlines()
                if s.startswith("unops_probe_success") and s.endswith(" 1.0")
            ]
        finally:
            exporter.terminate()
            bb.terminate()
            exporter.wait(10)
            bb.wait(10)

    print(
        f"{len(endpoints)} endpoints on {len({e.target for e in endpoints})} mail servers "
        f"({len(up)} up), {args.rounds} rounds, median per round:"
    )
    print(f"{'':20} {'wall s':>8} {'cpu s':>8} {'rss MiB':>8}")
    for name, rows in results.items():
        wall, cpu, rss = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"{name:20} {wall:8.3f} {cpu:8.3f} {rss:8.1f}")


if __name__ == "__main__":
    main()
