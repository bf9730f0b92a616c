"""Scanning on the lab: EICAR (plain and zipped) and GTUBE refused at SMTP time, fail closed.

The EICAR and GTUBE strings are the industry's harmless test patterns; no copy of a refused
message may land in any Maildir, and with clamd stopped mail is deferred (4xx), never delivered.
"""

from __future__ import annotations

import io
import smtplib
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from test_mail_support import (
    CLIENT_TIMEOUT_S,
    SMTP,
    User,
    deploy_twice,
    fqdn,
    maildirs_holding,
    message,
    token,
    users,
)

from unops.remote import run

pytestmark = pytest.mark.lab

EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def people(lab: object) -> dict[str, User]:
    deploy_twice()
    return users()


def send_on_25(server: str, msg: EmailMessage) -> tuple[int, str]:
    """Send `msg` unauthenticated on port 25 of `server`: the reply code and text to DATA."""
    with SMTP(fqdn(server), 25, timeout=CLIENT_TIMEOUT_S) as client:
        client.ehlo("sender.outside.example")
        try:
            client.send_message(msg)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode(errors="replace")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return code, text.decode(errors="replace")
    return 250, "accepted"


def with_attachment(recipient: User, subject: str, data: bytes, filename: str) -> EmailMessage:
    msg = message("sender@outside.example", recipient.address, subject, f"{subject}\n")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return msg


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def test_refuses_eicar_attachment(people: dict[str, User]) -> None:
    """A message with the EICAR file attached is refused with 5xx and lands in no Maildir."""
    subject = token()
    code, reply = send_on_25(
        "mail2", with_attachment(people["mail2"], subject, EICAR.encode(), "eicar.com")
    )
    assert 500 <= code < 600, reply
    assert maildirs_holding(subject) == []


def test_refuses_eicar_inside_a_zip(people: dict[str, User]) -> None:
    """A zip that holds the EICAR file is refused with 5xx and lands in no Maildir."""
    subject = token()
    data = zipped("eicar.com", EICAR.encode())
    code, reply = send_on_25("mail3", with_attachment(people["mail3"], subject, data, "e.zip"))
    assert 500 <= code < 600, reply
    assert maildirs_holding(subject) == []


def test_refuses_gtube(people: dict[str, User]) -> None:
    """A message whose body holds GTUBE is refused as spam with 5xx and lands in no Maildir."""
    subject = token()
    msg = message("sender@outside.example", people["mail1"].address, subject, f"{GTUBE}\n")
    code, reply = send_on_25("mail1", msg)
    assert 500 <= code < 600, reply
    assert maildirs_holding(subject) == []


@pytest.fixture
def clamd_stopped(people: object) -> Iterator[str]:
    """clamd stopped on mail4 for the test, started again after it whatever happens."""
    run("mail4", "systemctl stop clamav-daemon.service", fleet="lab", check=True)
    try:
        yield "mail4"
    finally:
        run("mail4", "systemctl start clamav-daemon.service", fleet="lab", check=True)


def test_defers_mail_while_clamd_is_down(clamd_stopped: str, people: dict[str, User]) -> None:
    """With clamd stopped, a clean message gets a 4xx (try again), and no copy is delivered."""
    subject = token()
    msg = message("sender@outside.example", people["mail4"].address, subject, "Clean text.\n")
    code, reply = send_on_25(clamd_stopped, msg)
    assert 400 <= code < 500, (code, reply)
    assert maildirs_holding(subject) == []
