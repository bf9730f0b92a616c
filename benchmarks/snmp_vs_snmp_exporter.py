"""SNMPv3 polling of 50 and of 200 simulated access points: the unops exporter against Debian's
snmp_exporter fetching the same values.

The agents are snmpsim (PyPI, in its own venv: --snmpsim) on loopback ports, one process, one
SNMPv3 user with SHA-256 and AES. Each round reads sysUpTime and the interface table (name, type,
operational state) of every agent: the exporter in one scrape (one engine, one GET and one
GETBULK per agent), snmp_exporter in one /snmp request per agent, all sent at once as Prometheus
would. Printed for each: wall time of the round, CPU time the process spent on it, and its
resident memory after it.

    python3 -m venv /tmp/snmpsim-venv
    /tmp/snmpsim-venv/bin/pip install snmpsim pysmi cryptography
    .venv/bin/python benchmarks/snmp_vs_snmp_exporter.py --agents 50 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _measure import fetch, measure, start_exporter, wait_listening

from unops.exporter.config import AccessPointTarget, ExporterConfig

EXPORTER_PORT = 19471
SNMP_EXPORTER_PORT = 19116
FIRST_AGENT_PORT = 21000
TIMEOUT = 10.0
USER, AUTH, PRIV = "bench", "benchauthpass1", "benchprivpass1"
# snmpsim picks the data file by the SNMPv3 context name: data/<CONTEXT>.snmprec.
CONTEXT = "ap"

RECORDS = """\
1.3.6.1.2.1.1.1.0|4|unops simulated access point
1.3.6.1.2.1.1.3.0|67|123456
1.3.6.1.2.1.2.1.0|2|3
1.3.6.1.2.1.2.2.1.1.1|2|1
1.3.6.1.2.1.2.2.1.1.2|2|2
1.3.6.1.2.1.2.2.1.1.3|2|3
1.3.6.1.2.1.2.2.1.2.1|4|lo
1.3.6.1.2.1.2.2.1.2.2|4|eth0
1.3.6.1.2.1.2.2.1.2.3|4|wlan0
1.3.6.1.2.1.2.2.1.3.1|2|24
1.3.6.1.2.1.2.2.1.3.2|2|6
1.3.6.1.2.1.2.2.1.3.3|2|71
1.3.6.1.2.1.2.2.1.8.1|2|1
1.3.6.1.2.1.2.2.1.8.2|2|1
1.3.6.1.2.1.2.2.1.8.3|2|2
"""


def snmp_exporter_module() -> dict[str, object]:
    def column(name: str, oid: str) -> dict[str, object]:
        return {
            "name": name,
            "oid": oid,
            "type": "gauge",
            "indexes": [{"labelname": "ifIndex", "type": "gauge"}],
            "lookups": [
                {
                    "labels": ["ifIndex"],
                    "labelname": "ifDescr",
                    "oid": "1.3.6.1.2.1.2.2.1.2",
                    "type": "DisplayString",
                }
            ],
        }

    return {
        "walk": ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.3", "1.3.6.1.2.1.2.2.1.8"],
        "get": ["1.3.6.1.2.1.1.3.0"],
        "metrics": [
            {"name": "sysUpTime", "oid": "1.3.6.1.2.1.1.3", "type": "gauge"},
            column("ifType", "1.3.6.1.2.1.2.2.1.3"),
            column("ifOperStatus", "1.3.6.1.2.1.2.2.1.8"),
        ],
        "version": 3,
        "max_repetitions": 25,
        "retries": 0,
        "timeout": "5s",
        "auth": {
            "username": USER,
            "security_level": "authPriv",
            "password": AUTH,
            "auth_protocol": "SHA256",
            "priv_protocol": "AES",
            "priv_password": PRIV,
            "context_name": CONTEXT,
        },
    }


def bench(agents: int, rounds: int, snmpsim: Path, snmp_exporter: str, scratch: Path) -> None:
    ports = list(range(FIRST_AGENT_PORT, FIRST_AGENT_PORT + agents))
    data = scratch / "data"
    cache = scratch / "cache"
    data.mkdir(exist_ok=True)
    cache.mkdir(exist_ok=True)
    (data / f"{CONTEXT}.snmprec").write_text(RECORDS)
    sim = subprocess.Popen(
        [
            str(snmpsim),
            f"--data-dir={data}",
            f"--cache-dir={cache}",
            "--process-user=root",
            "--process-group=root",
            "--logging-method=null",
            f"--v3-user={USER}",
            f"--v3-auth-key={AUTH}",
            "--v3-auth-proto=SHA256",
            f"--v3-priv-key={PRIV}",
            "--v3-priv-proto=AES",
            *(f"--agent-udpv4-endpoint=127.0.0.1:{port}" for port in ports),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The exporter reads the SNMPv3 keys from its secrets, as on the monitoring host.
    secrets = scratch / "secrets" / "bench" / "snmp" / "exporter"
    secrets.mkdir(parents=True, exist_ok=True)
    for name, value in (("auth", AUTH), ("priv", PRIV)):
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o600)
    config = ExporterConfig(
        "bench",
        "dc=bench",
        snmp_user=USER,
        snmp_context=CONTEXT,
        access_points=tuple(AccessPointTarget(f"ap{p}", "127.0.0.1", p) for p in ports),
    )
    (scratch / "exporter.json").write_text(config.to_json())
    (scratch / "snmp.yml").write_text(json.dumps({"unops": snmp_exporter_module()}))
    env = {**os.environ, "UNOPS_SECRETS_DIR": str(scratch / "secrets")}
    exporter = start_exporter(scratch / "exporter.json", EXPORTER_PORT, env)
    go = subprocess.Popen(
        [
            snmp_exporter,
            f"--config.file={scratch / 'snmp.yml'}",
            f"--web.listen-address=127.0.0.1:{SNMP_EXPORTER_PORT}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(f"http://127.0.0.1:{EXPORTER_PORT}/", "the exporter")
        wait_listening(f"http://127.0.0.1:{SNMP_EXPORTER_PORT}/", "snmp_exporter")
        urls = [
            f"http://127.0.0.1:{SNMP_EXPORTER_PORT}/snmp?module=unops&target=127.0.0.1:{p}"
            for p in ports
        ]
        pool = ThreadPoolExecutor(len(urls))

        def exporter_round() -> bytes:
            return fetch(f"http://127.0.0.1:{EXPORTER_PORT}/metrics", TIMEOUT)

        def go_round() -> list[bytes]:
            return list(pool.map(fetch, urls))

        # Warm-up: agents start (snmpsim indexes its data), engines discover the agents' ids.
        for _ in range(30):
            text = exporter_round().decode()
            if f'unops_ap_up{{ap="ap{ports[-1]}"}} 1.0' in text:
                break
            time.sleep(1)
        go_round()
        results: dict[str, list[tuple[float, float, float]]] = {
            "unops exporter": [],
            "snmp_exporter": [],
        }
        for _ in range(rounds):
            results["unops exporter"].append(measure(exporter.pid, exporter_round))
            results["snmp_exporter"].append(measure(go.pid, go_round))
        text = exporter_round().decode()
        up = sum(
            1
            for line in text.splitlines()
            if line.startswith("unops_ap_up{") and line.endswith(" 1.0")
        )
        answered = sum(1 for body in go_round() if b"sysUpTime " in body)
    finally:
        for process in (exporter, go, sim):
            process.terminate()
        for process in (exporter, go, sim):
            process.wait(10)
    print(
        f"{agents} agents: exporter read {up}, snmp_exporter read {answered}; "
        f"{rounds} rounds, median per round:"
    )
    print(f"  {'':18} {'wall s':>8} {'cpu s':>8} {'rss MiB':>8}")
    for name, rows in results.items():
        wall, cpu, rss = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"  {name:18} {wall:8.3f} {cpu:8.3f} {rss:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[50, 200], help="Agent counts.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds measured for each (median).")
    parser.add_argument(
        "--snmpsim",
        type=Path,
        default=Path("/tmp/snmpsim-venv/bin/snmpsim-command-responder"),
        help="snmpsim's command responder, from its own venv.",
    )
    args = parser.parse_args()
    snmp_exporter = shutil.which("prometheus-snmp-exporter")
    if snmp_exporter is None:
        sys.exit("prometheus-snmp-exporter is missing: make host-packages")
    if not args.snmpsim.exists():
        sys.exit(f"{args.snmpsim} is missing; see this script's docstring for the venv")
    for agents in args.agents:
        with tempfile.TemporaryDirectory() as scratch:
            bench(agents, args.rounds, args.snmpsim, snmp_exporter, Path(scratch))


if __name__ == "__main__":
    main()
