"""How soon the exporter answers /metrics after it starts when every target is dead.

Every target of the lab's configuration is moved to an address of the lab network that nobody
holds (packets go unanswered), the exporter is started on loopback, and /metrics is asked for as
soon as the port accepts: once without a scrape timeout header (a person with curl), once with
Prometheus' 10 s. Printed: seconds from process start to the answer, and how many targets read 0.

    .venv/bin/python benchmarks/exporter_dead_targets.py

Needs the lab network (`unops lab up`): the dead addresses are inside it.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from _measure import require_lab_network, start_exporter

from unops.estate import load_estate
from unops.exporter.config import config_from_estate
from unops.lab import paths

PORT = 19472
# Addresses of the lab network that no lab host has.
DEAD = [f"198.18.0.{n}" for n in range(200, 250)]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    require_lab_network()
    config = config_from_estate(load_estate(), "lab", ca_file=str(paths.CA_CERT))
    dead = iter(DEAD * 10)
    config = replace(
        config,
        endpoints=tuple(replace(e, address=next(dead)) for e in config.endpoints),
        sites=tuple(replace(s, address=next(dead)) for s in config.sites),
        ldap=tuple(replace(t, address=next(dead)) for t in config.ldap),
        access_points=tuple(replace(a, address=next(dead)) for a in config.access_points),
        backup_hosts=tuple(replace(b, address=next(dead)) for b in config.backup_hosts),
        mail_servers=tuple(replace(m, address=next(dead)) for m in config.mail_servers),
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "exporter.json"
        path.write_text(config.to_json())
        for header in (None, "10"):
            started = time.monotonic()
            process = start_exporter(path, PORT)
            try:
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", PORT), timeout=0.05).close()
                        break
                    except OSError:
                        time.sleep(0.01)
                listening = time.monotonic() - started
                headers = {"X-Prometheus-Scrape-Timeout-Seconds": header} if header else {}
                request = urllib.request.Request(
                    f"http://127.0.0.1:{PORT}/metrics", headers=headers
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    text = response.read().decode()
                answered = time.monotonic() - started
            finally:
                process.terminate()
                process.wait(10)
            down = sum(
                1
                for line in text.splitlines()
                if line.startswith(("unops_probe_success{", "unops_ap_up{"))
                and line.endswith(" 0.0")
            )
            up = sum(
                1
                for line in text.splitlines()
                if line.startswith(("unops_probe_success{", "unops_ap_up{"))
                and line.endswith(" 1.0")
            )
            print(
                f"scrape timeout header {header or 'none':>4}: listening after {listening:.2f} s, "
                f"/metrics answered {answered:.2f} s after start; {down} targets down, {up} up"
            )


if __name__ == "__main__":
    main()
