"""Resilience on the lab: the directory host down, and every server restarted under load.

Mail keeps flowing with the directory's provider stopped (each server reads its own replica),
and a deploy that restarts every server loses no message that any server accepted with a 250.
"""

from __future__ import annotations

import smtplib
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from test_mail_support import (
    CLIENT_TIMEOUT_S,
    DELIVERY_DEADLINE_S,
    MAIL_DEPLOY,
    SERVERS,
    SMTP,
    User,
    deploy_twice,
    flush_queues,
    fqdn,
    message,
    submit,
    token,
    users,
    wait_for_message,
)

from unops.deploying import run_deploy
from unops.remote import run

pytestmark = pytest.mark.lab

# Pause between two messages of the steady stream: a few per second, like a busy office.
STREAM_PAUSE_S = 0.2


@pytest.fixture(scope="module")
def people(lab: object) -> dict[str, User]:
    deploy_twice()
    return users()


@pytest.fixture
def directory_down(people: object) -> Iterator[None]:
    """slapd stopped on dir1, the directory's provider, for the test; started again after it."""
    run("dir1", "systemctl stop slapd.service", fleet="lab", check=True)
    try:
        yield
    finally:
        run("dir1", "systemctl start slapd.service", fleet="lab", check=True)


def test_mail_flows_with_the_directory_host_down(
    directory_down: None, people: dict[str, User]
) -> None:
    """With slapd stopped on dir1, a user submits, another logs in through a proxy and reads."""
    state = run("dir1", "systemctl is-active slapd.service", fleet="lab")
    assert state.stdout.strip() != "active"
    sender, recipient = people["mail3"], people["mail4"]
    subject = token()
    submit("mail3", sender, message(sender.address, recipient.address, subject))
    assert subject.encode() in wait_for_message("mail1", recipient, subject)


class Stream(threading.Thread):
    """Sends messages on port 25, round robin over the servers, until stopped."""

    def __init__(self, people: dict[str, User], marker: str) -> None:
        super().__init__(daemon=True)
        self.people = people
        self.marker = marker
        self.accepted: list[str] = []
        self.refused = 0
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            server = SERVERS[number % len(SERVERS)]
            # The recipient is homed on the next server: most messages also cross to a peer.
            recipient = self.people[SERVERS[(number + 1) % len(SERVERS)]]
            subject = f"{self.marker}-{number}"
            msg = message("sender@outside.example", recipient.address, subject)
            try:
                with SMTP(fqdn(server), 25, timeout=CLIENT_TIMEOUT_S) as client:
                    client.send_message(msg)
                self.accepted.append(subject)
            except (OSError, smtplib.SMTPException):
                # Refused or cut off while a server restarts: not accepted, the sender retries.
                self.refused += 1
            number += 1
            time.sleep(STREAM_PAUSE_S)


def delivered(marker: str) -> set[str]:
    found: set[str] = set()
    for server in SERVERS:
        done = run(
            server, f"grep -rhoE -- '{marker}-[0-9]+' /var/vmail | sort -u || true", fleet="lab"
        )
        found.update(done.stdout.split())
    return found


def test_no_accepted_message_is_lost_while_every_server_restarts(
    people: dict[str, User],
) -> None:
    """Mail sent steadily through a deploy that restarts all four servers: every 250 arrives."""
    # Drift on every server, so that the deploy rewrites the configuration and restarts.
    for server in SERVERS:
        run(
            server,
            "echo '# drift' >> /etc/postfix/main.cf; echo '# drift' >> /etc/dovecot/dovecot.conf",
            fleet="lab",
            check=True,
        )
    marker = f"unops-steady-{uuid.uuid4().hex[:12]}"
    stream = Stream(people, marker)
    stream.start()
    try:
        result = run_deploy("lab", [MAIL_DEPLOY], limit=["mail"])
    finally:
        stream.stop.set()
        stream.join(timeout=120)
    assert not result.failed_hosts, result.to_dict()
    for name, host in result.hosts.items():
        restarted = {op.name for op in host.operations if op.changed}
        assert "Restart postfix@-.service" in restarted, (name, restarted)
        assert "Restart dovecot.service" in restarted, (name, restarted)
    assert stream.accepted, f"no message was accepted ({stream.refused} refused)"

    deadline = time.monotonic() + DELIVERY_DEADLINE_S
    missing = set(stream.accepted)
    while missing and time.monotonic() < deadline:
        flush_queues()
        time.sleep(3)
        missing -= delivered(marker)
    assert not missing, f"{len(missing)} of {len(stream.accepted)} accepted messages lost"
