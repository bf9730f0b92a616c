"""How long `unops directory sync` takes for the 792 accounts of the estate, against a peer tool.

It starts a private slapd on 127.0.0.1 with the configuration the directory deploy generates
(the provider's, with a throwaway CA), so that the shared lab is not emptied for a cold run, and
measures, each repeated and reported as the median:

  - unops sync, cold (an empty ou=mailboxes) and with nothing to change;
  - ldapadd of the same 792 entries as one LDIF (the peer tool, cold), over StartTLS;
  - ldapsearch of every mailbox (what any reconcile must read before it can find nothing to do).

    .venv/bin/python benchmarks/directory_sync.py [--repeat 3] [--lab]

With --lab it also times the no-change sync of the lab's own directory (`unops directory sync`
as a user runs it), which changes nothing there. Needs ldap-utils (in the Makefile's
HOST_PACKAGES) and slapd on this machine, installed without a configuration of its own and not
started: `echo "slapd slapd/no_configuration boolean true" | debconf-set-selections` first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import jinja2
from ldap3 import Connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from unops.directory import admin_dn, base_dn, mailbox_dn, mailboxes_dn  # noqa: E402
from unops.directory.client import Endpoint, apply_plan, connect, read_mailboxes  # noqa: E402
from unops.directory.plan import plan_sync  # noqa: E402
from unops.directory.roster import RosterEntry, read_roster  # noqa: E402
from unops.directory.slapd import (  # noqa: E402
    TlsFiles,
    admin_peers,
    config_values,
    tree_entries,
)
from unops.estate import DEFAULT_ROOT, load_estate  # noqa: E402

ADMIN_PASSWORD = "benchmark-admin-password-0123456789"
ROSTER = DEFAULT_ROOT / "mailboxes.csv"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_tls(folder: Path) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost (openssl, P-256)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "h.key", "h.csr", "h.crt")
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=unops benchmark CA",
    )
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext = folder / "ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return TlsFiles(str(ca), str(cert), str(key))


class PrivateSlapd:
    """A slapd of our own, with the deploy's generated provider configuration, on loopback."""

    def __init__(self, folder: Path, base: str) -> None:
        self.folder = folder
        self.base = base
        self.port = free_port()
        self.tls = make_tls(folder)
        self.socket = folder / "run" / "ldapi"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        templates = ROOT / "deploys" / "templates" / "slapd"
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        values = config_values(
            base=self.base, tls=self.tls, peers=admin_peers([IPv4Address("127.0.0.1")])
        )
        text = env.get_template("etc/ldap/unops/config.ldif.j2").render(**values)
        db, conf, run = self.folder / "db", self.folder / "slapd.d", self.folder / "run"
        for path in (db, conf, run):
            path.mkdir()
        text = text.replace("/var/lib/ldap", str(db)).replace("/var/run/slapd", str(run))
        ldif = self.folder / "config.ldif"
        ldif.write_text(text)
        subprocess.run(["slapadd", "-q", "-n0", "-F", str(conf), "-l", str(ldif)], check=True)
        subprocess.run(["chown", "-R", "openldap:openldap", str(self.folder)], check=True)
        os.chmod(self.folder, 0o755)
        subprocess.run(
            ["runuser", "-u", "openldap", "--", "slaptest", "-Q", "-u", "-F", str(conf)], check=True
        )
        ldapi = "ldapi://" + str(self.socket).replace("/", "%2F")
        self.process = subprocess.Popen(
            [
                "slapd",
                "-d",
                "0",
                "-u",
                "openldap",
                "-g",
                "openldap",
                "-F",
                str(conf),
                "-h",
                f"ldap://127.0.0.1:{self.port}/ {ldapi}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if self.socket.exists():
                break
            time.sleep(0.1)
        entries = tree_entries(self.base, {}, admin_password=ADMIN_PASSWORD)
        for entry in entries:
            subprocess.run(
                ["ldapadd", "-Q", "-Y", "EXTERNAL", "-H", ldapi],
                input=entry.add.encode(),
                check=True,
                capture_output=True,
            )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def env(self) -> dict[str, str]:
        return {**os.environ, "LDAPTLS_CACERT": self.tls.ca, "LDAPTLS_REQCERT": "demand"}

    def tool(self, name: str, *args: str, stdin: bytes | None = None) -> None:
        subprocess.run(
            [
                name,
                "-x",
                "-ZZ",
                "-H",
                f"ldap://127.0.0.1:{self.port}",
                "-D",
                admin_dn(self.base),
                "-w",
                ADMIN_PASSWORD,
                *args,
            ],
            input=stdin,
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def empty_mailboxes(self) -> None:
        conn = self.connect()
        for box in read_mailboxes(conn, self.base):
            conn.delete(mailbox_dn(self.base, box.address))
        conn.unbind()

    def connect(self) -> Connection:
        endpoint = Endpoint("bench", "localhost", "127.0.0.1", port=self.port)
        return connect(endpoint, admin_dn(self.base), ADMIN_PASSWORD, Path(self.tls.ca))


def roster_ldif(base: str, roster: list[RosterEntry]) -> bytes:
    chunks = []
    for entry in roster:
        chunks.append(
            f"dn: {mailbox_dn(base, entry.address)}\nobjectClass: inetOrgPerson\n"
            f"objectClass: unopsMailbox\nmail: {entry.address}\ncn: {entry.display_name}\n"
            f"sn: {entry.display_name}\nunopsMission: {entry.mission}\n"
            f"unopsQuotaMB: {entry.quota_mb}\nunopsAccountState: {entry.state.value}\n"
            f"unopsHomeServer: {entry.server}\n"
        )
    return "\n".join(chunks).encode()


def timed(label: str, repeat: int, setup: Callable[[], None], work: Callable[[], object]) -> float:
    runs = []
    for _ in range(repeat):
        setup()
        started = time.perf_counter()
        work()
        runs.append(time.perf_counter() - started)
    median = statistics.median(runs)
    spread = ", ".join(f"{r:.2f}" for r in runs)
    print(f"{label:<52} {median:7.2f} s median  (runs: {spread})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each measurement.")
    parser.add_argument("--lab", action="store_true", help="Also time a no-change sync on the lab.")
    args = parser.parse_args()
    for tool in ("slapd", "slapadd", "ldapadd", "ldapsearch", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: install slapd and ldap-utils (make host-packages)")

    estate = load_estate()
    base = base_dn(estate.zone)
    roster = read_roster(ROSTER, estate)
    servers = sorted(host.name for host in estate.hosts_with_role("mail"))
    ldif = roster_ldif(base, roster)
    print(f"{len(roster)} accounts from {ROSTER.relative_to(ROOT)}; slapd on 127.0.0.1, StartTLS")

    with tempfile.TemporaryDirectory(prefix="unops-bench-") as tmp:
        slapd = PrivateSlapd(Path(tmp), base)
        try:
            slapd.start()

            def unops_sync() -> None:
                conn = slapd.connect()
                plan = plan_sync(read_mailboxes(conn, base), roster, servers)
                apply_plan(conn, base, plan)
                conn.unbind()

            def nothing() -> None:
                pass

            timed("unops sync, cold (792 adds)", args.repeat, slapd.empty_mailboxes, unops_sync)
            timed("unops sync, nothing to change", args.repeat, nothing, unops_sync)
            timed(
                "ldapadd of the same LDIF, cold (peer)",
                args.repeat,
                slapd.empty_mailboxes,
                lambda: slapd.tool("ldapadd", stdin=ldif),
            )
            timed(
                "ldapsearch of every mailbox (peer's read)",
                args.repeat,
                nothing,
                lambda: slapd.tool(
                    "ldapsearch", "-LLL", "-b", mailboxes_dn(base), "(objectClass=unopsMailbox)"
                ),
            )
        finally:
            slapd.stop()

    if args.lab:
        command = [sys.executable, "-m", "unops", "directory", "sync", str(ROSTER)]
        timed(
            "lab: `unops directory sync`, nothing to change",
            args.repeat,
            nothing,
            lambda: subprocess.run(command, check=True, capture_output=True),
        )


if __name__ == "__main__":
    main()
