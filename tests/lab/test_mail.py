"""Mission e-mail on the lab: delivery across servers, no relay, TLS before AUTH, own sender only.

Real clients (smtplib, imaplib) talk to the four lab mail servers, verifying the lab CA.
"""

from __future__ import annotations

import imaplib
import ssl

import pytest
from test_mail_support import (
    CLIENT_TIMEOUT_S,
    IMAP4,
    IMAPS,
    SMTP,
    User,
    deploy_twice,
    fqdn,
    message,
    submit,
    tls_context,
    token,
    users,
    wait_for_message,
)

from unops.deploying import DeployResult
from unops.estate import load_estate
from unops.remote import run

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def deployed(lab: object) -> tuple[DeployResult, DeployResult]:
    return deploy_twice()


@pytest.fixture(scope="module")
def people(deployed: object) -> dict[str, User]:
    return users()


def test_second_deploy_changes_nothing(deployed: tuple[DeployResult, DeployResult]) -> None:
    """The mail deploy run a second time reports no change on any of the four servers."""
    _, second = deployed
    changed = {
        name: [op.name for op in host.operations if op.changed]
        for name, host in second.hosts.items()
        if host.changed
    }
    assert sorted(second.hosts) == ["mail1", "mail2", "mail3", "mail4"]
    assert second.changed == 0, changed


def test_message_submitted_on_one_server_is_read_on_a_third(people: dict[str, User]) -> None:
    """Submitted on mail1 (587), homed on mail2, read over IMAP on mail3: the message arrives."""
    subject = token()
    sender, recipient = people["mail1"], people["mail2"]
    submit("mail1", sender, message(sender.address, recipient.address, subject))
    raw = wait_for_message("mail3", recipient, subject)
    assert subject.encode() in raw
    assert f"From: {sender.address}".encode() in raw


def test_submission_with_implicit_tls_on_465_delivers(people: dict[str, User]) -> None:
    """A message submitted on 465 (implicit TLS) is delivered and readable on its home server."""
    subject = token()
    sender, recipient = people["mail4"], people["mail3"]
    submit("mail4", sender, message(sender.address, recipient.address, subject), port=465)
    assert subject.encode() in wait_for_message("mail3", recipient, subject)


@pytest.mark.parametrize(
    "recipient",
    [
        "someone@outside.example",
        "someone%outside.example@{domain}",
        "outside.example!someone@{domain}",
        "@{domain}:someone@outside.example",
        "someone@outside.example@{domain}",
    ],
)
def test_rejects_relay_without_auth(people: dict[str, User], recipient: str) -> None:
    """On port 25, unauthenticated mail for an outside domain, in any address form, gets a 5xx."""
    domain = people["mail1"].address.partition("@")[2]
    rcpt = recipient.format(domain=domain)
    with SMTP(fqdn("mail1"), 25, timeout=CLIENT_TIMEOUT_S) as client:
        client.ehlo("outside.example")
        code, _ = client.docmd("MAIL", "FROM:<spammer@outside.example>")
        assert code == 250
        # Sent as typed: smtplib's own quoting would rewrite the odd address forms.
        code, reply = client.docmd("RCPT", f"TO:<{rcpt}>")
    assert 500 <= code < 600, (rcpt, code, reply)


def test_submission_offers_auth_only_after_starttls(deployed: object) -> None:
    """Port 587 advertises STARTTLS but no AUTH before TLS, and AUTH after it."""
    with SMTP(fqdn("mail2"), 587, timeout=CLIENT_TIMEOUT_S) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
        assert code >= 500
        client.starttls(context=tls_context())
        client.ehlo()
        assert client.has_extn("auth")
        version = client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else None
        assert version in ("TLSv1.2", "TLSv1.3")


def test_imap_refuses_login_before_starttls(people: dict[str, User]) -> None:
    """Port 143 announces LOGINDISABLED and no AUTH mechanism until STARTTLS; then login works."""
    user = people["mail2"]
    client = IMAP4(fqdn("mail2"), 143, timeout=CLIENT_TIMEOUT_S)
    try:
        assert "LOGINDISABLED" in client.capabilities
        assert not [cap for cap in client.capabilities if cap.startswith("AUTH=")]
        with pytest.raises(imaplib.IMAP4.error):
            client.login(user.address, user.password)
        client.starttls(ssl_context=tls_context())
        assert client.login(user.address, user.password)[0] == "OK"
    finally:
        client.logout()


def test_authenticated_user_cannot_send_as_another(people: dict[str, User]) -> None:
    """A logged-in user who gives another user's address as envelope sender is refused (5xx)."""
    user, other = people["mail1"], people["mail2"]
    with SMTP(fqdn("mail1"), 587, timeout=CLIENT_TIMEOUT_S) as client:
        client.starttls(context=tls_context())
        client.login(user.address, user.password)
        client.mail(other.address)
        code, reply = client.rcpt(user.address)
    assert 500 <= code < 600, (code, reply)


def test_wrong_password_is_refused_on_every_server(people: dict[str, User]) -> None:
    """A login with a wrong password fails, on the home server and through a proxy alike."""
    user = people["mail3"]
    for server in ("mail3", "mail1"):
        client = IMAPS(fqdn(server), 993, ssl_context=tls_context(), timeout=CLIENT_TIMEOUT_S)
        try:
            with pytest.raises(imaplib.IMAP4.error):
                client.login(user.address, user.password + "x")
        finally:
            client.shutdown()


def test_quota_comes_from_the_directory(people: dict[str, User]) -> None:
    """Dovecot enforces the mailbox's unopsQuotaMB from the directory (no quota is set locally)."""
    user = people["mail2"]
    box = next(b for b in load_estate().mailboxes if b.address == user.address)
    done = run("mail2", ["doveadm", "-f", "flow", "quota", "get", "-u", user.address], check=True)
    storage = next(line for line in done.stdout.splitlines() if "Type=STORAGE" in line)
    assert f"Limit={box.quota_mb * 1024} " in storage, storage
