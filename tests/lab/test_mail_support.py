"""What the mail lab tests share: the deploy run twice once per session, users, real clients.

Not a test module of its own (it holds no test); the mail test modules import it. The deploy
of the directory runs first (mail reads accounts from it), then the mail deploy twice.
"""

from __future__ import annotations

import functools
import imaplib
import secrets
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from ldap3 import Connection, Server, Tls

from unops import PROJECT_ROOT
from unops.deploying import DeployResult, run_deploy
from unops.directory import base_dn as directory_base
from unops.directory import mailbox_dn
from unops.estate import DEFAULT_ROOT, load_estate
from unops.estate.models import Mailbox, MailboxState
from unops.lab import paths
from unops.remote import run

DIRECTORY_DEPLOY = PROJECT_ROOT / "deploys" / "directory.py"
MAIL_DEPLOY = PROJECT_ROOT / "deploys" / "mail.py"
SERVERS = ["mail1", "mail2", "mail3", "mail4"]
UNOPS = [sys.executable, "-m", "unops"]
# Deadlines for things that happen in the background (replication, queue runs): a bound on a
# precondition, never a measured figure.
DELIVERY_DEADLINE_S = 120
REPLICATION_DEADLINE_S = 120
CLIENT_TIMEOUT_S = 60


@dataclass(frozen=True)
class User:
    address: str
    home: str
    password: str


def fqdn(server: str) -> str:
    return load_estate().fqdn(server)


@functools.cache
def _addresses() -> dict[str, str]:
    return {h.fqdn: str(h.address) for h in load_estate().lab_hosts()}


def _connect(name: str, port: int, timeout: float | None) -> socket.socket:
    # The control machine does not resolve lab names: connect to the lab address, while TLS
    # still verifies the certificate against the server's name.
    return socket.create_connection((_addresses()[name], port), timeout)


class SMTP(smtplib.SMTP):
    """smtplib.SMTP to a lab server by name: STARTTLS verifies that name."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return _connect(host, port, timeout)


class SMTPS(smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL to a lab server by name, verifying that name."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = _connect(host, port, timeout)
        return self.context.wrap_socket(sock, server_hostname=self._host)


class IMAP4(imaplib.IMAP4):
    """imaplib.IMAP4 to a lab server by name: STARTTLS verifies that name."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _connect(self.host, self.port, timeout)


class IMAPS(imaplib.IMAP4_SSL):
    """imaplib.IMAP4_SSL to a lab server by name, verifying that name."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = _connect(self.host, self.port, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def tls_context() -> ssl.SSLContext:
    """A client context that verifies the lab CA and the server's name, TLS 1.2 or later."""
    context = ssl.create_default_context(cafile=str(paths.CA_CERT))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _fail_on(result: DeployResult, what: str) -> None:
    if result.failed_hosts:
        errors = {
            name: [op.error for op in host.operations if not op.success] or host.error
            for name, host in result.hosts.items()
            if not host.ok
        }
        pytest.fail(f"{what} failed on {result.failed_hosts}: {errors}")


@functools.cache
def deploy_twice() -> tuple[DeployResult, DeployResult]:
    """The directory deployed and synced, then the mail deploy run twice over the mail servers."""
    _fail_on(run_deploy("lab", [DIRECTORY_DEPLOY], limit=["directory", "mail"]), "directory deploy")
    done = subprocess.run(
        [*UNOPS, "directory", "sync", str(DEFAULT_ROOT / "mailboxes.csv"), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.fail(f"unops directory sync failed: {done.stderr[-2000:]}")
    first = run_deploy("lab", [MAIL_DEPLOY], limit=["mail"])
    _fail_on(first, "mail deploy (first run)")
    second = run_deploy("lab", [MAIL_DEPLOY], limit=["mail"])
    _fail_on(second, "mail deploy (second run)")
    return first, second


def _pick(boxes: list[Mailbox], server: str, skip: set[str]) -> Mailbox:
    for box in boxes:
        if box.server == server and box.address not in skip:
            return box
    pytest.fail(f"the estate has no active mailbox homed on {server} to test with")


def _set_password(address: str, password: str) -> None:
    done = subprocess.run(
        [*UNOPS, "directory", "passwd", address],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"unops directory passwd {address} failed: {done.stderr}")


def _replica_accepts(server: str, address: str, password: str) -> bool:
    tls = Tls(
        ca_certs_file=str(paths.CA_CERT), validate=ssl.CERT_REQUIRED, valid_names=[fqdn(server)]
    )
    dn = mailbox_dn(directory_base(load_estate().zone), address)
    conn = Connection(
        Server(_addresses()[fqdn(server)], port=389, tls=tls, connect_timeout=10),
        user=dn,
        password=password,
        receive_timeout=10,
    )
    try:
        conn.open()
        conn.start_tls()
        return bool(conn.bind())
    except Exception:
        return False
    finally:
        conn.unbind()


@functools.cache
def users() -> dict[str, User]:
    """One user per mail server, in distinct domains, whose password every replica accepts."""
    deploy_twice()
    active = [b for b in load_estate().mailboxes if b.state is MailboxState.ACTIVE]
    chosen: dict[str, User] = {}
    domains: set[str] = set()
    for server in SERVERS:
        candidates = [b for b in active if b.address.partition("@")[2] not in domains]
        box = _pick(candidates, server, set())
        domains.add(box.address.partition("@")[2])
        chosen[server] = User(box.address, server, secrets.token_urlsafe(18))
        _set_password(box.address, chosen[server].password)
    deadline = time.monotonic() + REPLICATION_DEADLINE_S
    pending = [(s, u) for s in SERVERS for u in chosen.values()]
    while pending and time.monotonic() < deadline:
        pending = [(s, u) for s, u in pending if not _replica_accepts(s, u.address, u.password)]
        if pending:
            time.sleep(2)
    if pending:
        pytest.fail(f"the replicas did not accept the new passwords in time: {pending[:4]}")
    return chosen


def token() -> str:
    """A marker unique to one test message, searched for in Maildirs and over IMAP."""
    return f"unops-test-{uuid.uuid4().hex}"


def message(sender: str, recipient: str, subject: str, body: str = "Test.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.partition('@')[2]}>"
    msg.set_content(body)
    return msg


def submit(server: str, user: User, msg: EmailMessage, port: int = 587) -> None:
    """Submit `msg` on `server` as `user`: STARTTLS on 587, implicit TLS on 465, then AUTH."""
    if port == 465:
        client: smtplib.SMTP = SMTPS(
            fqdn(server), 465, timeout=CLIENT_TIMEOUT_S, context=tls_context()
        )
    else:
        client = SMTP(fqdn(server), port, timeout=CLIENT_TIMEOUT_S)
        client.starttls(context=tls_context())
    with client:
        client.login(user.address, user.password)
        client.send_message(msg)


def imap_login(server: str, user: User) -> imaplib.IMAP4_SSL:
    client = IMAPS(fqdn(server), 993, ssl_context=tls_context(), timeout=CLIENT_TIMEOUT_S)
    client.login(user.address, user.password)
    return client


def fetch_by_subject(server: str, user: User, subject: str) -> bytes | None:
    """The raw message with `subject` in `user`'s INBOX, read over IMAP on `server`, or None."""
    client = imap_login(server, user)
    try:
        client.select("INBOX", readonly=True)
        status, data = client.search(None, "SUBJECT", f'"{subject}"')
        ids = data[0].split() if status == "OK" and data and data[0] else []
        if not ids:
            return None
        status, parts = client.fetch(ids[-1], "(RFC822)")
        for part in parts:
            if isinstance(part, tuple):
                return part[1]
        return None
    finally:
        client.logout()


def wait_for_message(server: str, user: User, subject: str) -> bytes:
    deadline = time.monotonic() + DELIVERY_DEADLINE_S
    while time.monotonic() < deadline:
        raw = fetch_by_subject(server, user, subject)
        if raw is not None:
            return raw
        flush_queues()
        time.sleep(2)
    pytest.fail(f"no message {subject!r} reached {user.address} (read on {server}) in time")


def flush_queues() -> None:
    """Ask every server to retry its deferred mail now, instead of at its next queue run."""
    for server in SERVERS:
        run(server, "postqueue -f", fleet="lab")


def maildirs_holding(marker: str) -> list[str]:
    """`server:path` of every message file in any Maildir, on any server, that holds `marker`."""
    found = []
    for server in SERVERS:
        done = run(server, f"grep -rlF -- {marker} /var/vmail || true", fleet="lab")
        found += [f"{server}:{line}" for line in done.stdout.split()]
    return found
