"""Local fake servers on loopback for the exporter's unit tests: tiny SMTP and IMAP speakers.

They are tests of the exporter's probes (deadlines, TLS, parsing), not of any mail server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    not_after: dt.datetime
    ca_not_after: dt.datetime

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_pki(folder: Path, name: str = "mail1.test", ca_days: int = 365) -> Pki:
    """A CA (valid `ca_days`) and a server certificate for `name`, valid for 30 days."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        folder / "ca.pem",
        folder / "cert.pem",
        folder / "key.pem",
        not_after,
        now + dt.timedelta(days=ca_days),
    )
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@contextmanager
def serving(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    """Run `handler` for each connection on 127.0.0.1 in a thread of its own; yields the port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def start() -> asyncio.Server:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def smtp_speaker(tls: ssl.SSLContext, *, auth: bool = False) -> Handler:
    """A server that greets, answers EHLO with STARTTLS, upgrades, and says goodbye."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail1.test ESMTP fake\r\n")
        secure = writer.get_extra_info("ssl_object") is not None
        while line := await reader.readline():
            command = line.decode().strip().upper()
            if command.startswith("EHLO"):
                extra = b"250-AUTH PLAIN\r\n" if auth and secure else b""
                offer = b"" if secure else b"250-STARTTLS\r\n"
                writer.write(b"250-mail1.test\r\n" + offer + extra + b"250 8BITMIME\r\n")
            elif command == "STARTTLS":
                writer.write(b"220 go ahead\r\n")
                await writer.drain()
                await writer.start_tls(tls)
                secure = True
            elif command == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"502 not here\r\n")
            await writer.drain()
        writer.close()

    return handle


def imap_speaker(user: str, password: str) -> Handler:
    """An IMAPS server that accepts one user and password."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK fake IMAP ready\r\n")
        while line := await reader.readline():
            tag, _, rest = line.decode().strip().partition(" ")
            verb = rest.split(" ", 1)[0].upper()
            if verb == "LOGIN":
                ok = rest == f'LOGIN "{user}" "{password}"'
                writer.write(f"{tag} {'OK' if ok else 'NO'} login\r\n".encode())
            elif verb == "LOGOUT":
                writer.write(f"* BYE\r\n{tag} OK bye\r\n".encode())
                await writer.drain()
                break
            else:
                writer.write(f"{tag} OK done\r\n".encode())
            await writer.drain()
        writer.close()

    return handle


def silent() -> Handler:
    """A server that accepts and never says a word: a blackholed or hung service."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    return handle
