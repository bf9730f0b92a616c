"""The few lines of SMTP, IMAP and HTTP a probe speaks, over asyncio streams.

The probes need a deadline on every step and many at once, which the standard library's
blocking smtplib and imaplib cannot give on one event loop; what is spoken here is only the
greeting, EHLO, STARTTLS, AUTH, a login and a request line, never a full client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Mapping

from cryptography import x509

log = logging.getLogger(__name__)

# Longest reply line accepted; a peer that sends more is not a mail server we know.
MAX_LINE = 8192


class DialogError(Exception):
    """The peer answered something a healthy server would not; the message says what."""


class Session:
    """A stream to one server, which can be upgraded to TLS in place (STARTTLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, address: str, port: int, tls: ssl.SSLContext | None, server_name: str | None
    ) -> Session:
        reader, writer = await asyncio.open_connection(
            address, port, ssl=tls, server_hostname=server_name if tls else None, limit=MAX_LINE
        )
        return cls(reader, writer)

    async def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        await self.writer.start_tls(context, server_hostname=server_name)

    def cert_expiry(self) -> float | None:
        """The earliest expiry in the certificate chain the server presented, or None."""
        return earliest_expiry(self.writer.get_extra_info("ssl_object"))

    async def send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()

    async def line(self) -> str:
        raw = await self.reader.readline()
        if not raw:
            raise DialogError("the server closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def close(self) -> None:
        self.writer.close()
        # A peer that drops the connection at QUIT is not a failed probe.
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


def cert_expiry(cert: Mapping[str, object] | None) -> float | None:
    """The notAfter of a peer certificate, in seconds since the epoch."""
    if not cert or not isinstance(cert.get("notAfter"), str):
        return None
    return float(ssl.cert_time_to_seconds(str(cert["notAfter"])))


def earliest_expiry(tls: ssl.SSLObject | ssl.SSLSocket | None) -> float | None:
    """The earliest notAfter of the verified chain (the server's certificate, intermediates and
    the trusted root), as blackbox_exporter's probe_ssl_earliest_cert_expiry means it.

    Python 3.13 gives the chain as DER; 3.10 to 3.12 only through the private method of the
    object underneath. Where neither answers, the server's own certificate is used.
    """
    if tls is None:
        return None
    getter = getattr(tls, "get_verified_chain", None)
    if getter is None:
        getter = getattr(getattr(tls, "_sslobj", None), "get_verified_chain", None)
    times: list[float] = []
    try:
        for cert in getter() if getter is not None else []:
            if isinstance(cert, bytes):
                times.append(x509.load_der_x509_certificate(cert).not_valid_after_utc.timestamp())
            else:
                times.append(float(ssl.cert_time_to_seconds(cert.get_info()["notAfter"])))
    except (ssl.SSLError, ValueError, KeyError, AttributeError) as exc:
        log.debug("no verified chain from the TLS object (%s); using the leaf", exc)
        times = []
    if times:
        return min(times)
    return cert_expiry(tls.getpeercert())


# SMTP -------------------------------------------------------------------------------------------


async def smtp_reply(session: Session) -> tuple[int, list[str]]:
    """One SMTP reply: its code and the text of each of its lines."""
    lines: list[str] = []
    while True:
        line = await session.line()
        if len(line) < 3 or not line[:3].isdigit():
            raise DialogError(f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines


async def smtp_expect(session: Session, command: str | None, code: int) -> list[str]:
    if command is not None:
        await session.send(command)
    got, lines = await smtp_reply(session)
    if got != code:
        what = command.split(" ", 1)[0] if command else "greeting"
        raise DialogError(f"SMTP {what}: expected {code}, got {got} {' '.join(lines)[:120]}")
    return lines


async def smtp_hello(
    session: Session,
    helo: str,
    context: ssl.SSLContext,
    server_name: str,
    *,
    starttls: bool,
) -> list[str]:
    """Greeting, EHLO, and STARTTLS then EHLO again when asked; returns the EHLO keywords."""
    await smtp_expect(session, None, 220)
    keywords = [line.upper() for line in await smtp_expect(session, f"EHLO {helo}", 250)]
    if starttls:
        if not any(k.startswith("STARTTLS") for k in keywords):
            raise DialogError("SMTP server does not offer STARTTLS")
        await smtp_expect(session, "STARTTLS", 220)
        await session.start_tls(context, server_name)
        keywords = [line.upper() for line in await smtp_expect(session, f"EHLO {helo}", 250)]
    return keywords


async def smtp_auth_plain(session: Session, user: str, password: str) -> None:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    await smtp_expect(session, f"AUTH PLAIN {token}", 235)


async def smtp_send(session: Session, sender: str, recipient: str, message: str) -> int:
    """MAIL, RCPT and DATA; returns the code of the reply to the message (250 when accepted)."""
    await smtp_expect(session, f"MAIL FROM:<{sender}>", 250)
    await smtp_expect(session, f"RCPT TO:<{recipient}>", 250)
    await smtp_expect(session, "DATA", 354)
    for line in message.split("\n"):
        # Dot-stuffing (RFC 5321 section 4.5.2): a leading dot is doubled.
        await session.send("." + line if line.startswith(".") else line)
    await session.send(".")
    code, _ = await smtp_reply(session)
    return code


async def smtp_quit(session: Session) -> None:
    with contextlib.suppress(DialogError, OSError, ssl.SSLError):
        await session.send("QUIT")
        await smtp_reply(session)
    await session.close()


# IMAP -------------------------------------------------------------------------------------------


def imap_quote(value: str) -> str:
    """An IMAP quoted string (RFC 3501 section 4.3)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Imap:
    """Tagged IMAP commands over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.counter = 0

    async def greeting(self) -> str:
        line = await self.session.line()
        if not line.startswith("* OK"):
            raise DialogError(f"IMAP greeting is not OK: {line[:80]!r}")
        return line

    async def command(self, text: str, *, secret: bool = False) -> list[str]:
        """Send a command; return its untagged lines, or raise with the tagged reply."""
        self.counter += 1
        tag = f"u{self.counter}"
        await self.session.send(f"{tag} {text}")
        untagged: list[str] = []
        while True:
            line = await self.session.line()
            if line.startswith(f"{tag} "):
                status = line[len(tag) + 1 :]
                if not status.upper().startswith("OK"):
                    what = "LOGIN" if secret else text.split(" ", 1)[0]
                    raise DialogError(f"IMAP {what}: {status[:120]}")
                return untagged
            untagged.append(line)

    async def logout(self) -> None:
        with contextlib.suppress(DialogError, OSError, ssl.SSLError):
            await self.command("LOGOUT")
        await self.session.close()


# HTTP -------------------------------------------------------------------------------------------


async def http_get_status(session: Session, host: str, path: str = "/") -> int:
    """Send a GET and read the status line of the response."""
    session.writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: unops-exporter\r\n"
        "Connection: close\r\n\r\n".encode("ascii")
    )
    await session.writer.drain()
    status = await session.line()
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise DialogError(f"not an HTTP status line: {status[:80]!r}")
    return int(parts[1])
