"""Mail flow end to end, and the scanners' self-test, run in the background on a schedule.

Each round, the probe mailbox of every server submits a message (587, STARTTLS, AUTH) to the
probe mailbox homed on the next server, and the exporter waits, over IMAP, until it arrives.
Each server is also asked to accept the EICAR test file and the GTUBE test string: both must be
refused. A round takes longer than a scrape, so scrapes export the last finished round.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from unops.exporter import dialogs
from unops.exporter.config import ExporterConfig, MailServer, probe_secret, read_secret
from unops.exporter.core import SourceCollector
from unops.exporter.tls import client_context

log = logging.getLogger(__name__)

# Seconds a probe message may take to arrive before the flow counts as broken.
MAIL_FLOW_TIMEOUT = 90.0
# Seconds between two looks into the destination mailbox.
POLL_INTERVAL = 2.0
# Seconds any single SMTP or IMAP step may take.
STEP_TIMEOUT = 30.0

# The industry test strings, assembled at run time so that this file is not itself flagged by a
# scanner on the control machine.
EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@dataclass(frozen=True)
class FlowResult:
    source: str
    destination: str
    success: bool
    duration: float
    finished: float


def message(sender: str, recipient: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{secrets.token_hex(12)}@{sender.split('@', 1)[1]}>"
    msg.set_content(body)
    return msg


def as_lines(msg: EmailMessage) -> str:
    return msg.as_string().replace("\r\n", "\n").rstrip("\n")


class MailFlowCollector(SourceCollector):
    """Exports the last finished round; `run_forever` is started on the exporter's loop."""

    name = "mail_flow"

    def __init__(self, config: ExporterConfig) -> None:
        super().__init__()
        self.config = config
        self.context = client_context(config.ca_file)
        self.helo = socket.getfqdn() or "unops-exporter"
        self.flows: dict[tuple[str, str], FlowResult] = {}
        self.selftests: dict[tuple[str, str], bool] = {}

    def routes(self) -> list[tuple[MailServer, MailServer]]:
        servers = list(self.config.mail_servers)
        if len(servers) < 2:
            return []
        return [(servers[i], servers[(i + 1) % len(servers)]) for i in range(len(servers))]

    async def gather(self, budget: float) -> list[Metric]:
        return self.families()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The next round tries again; a bug here must not end the exporter's loop.
                log.exception(
                    "mail flow round failed; retrying in %.0f s", self.config.mail_flow_interval
                )
            await asyncio.sleep(self.config.mail_flow_interval)

    async def run_round(self) -> None:
        flows = [self.flow(source, destination) for source, destination in self.routes()]
        tests = [
            self.selftest(server, name, body)
            for server in self.config.mail_servers
            for name, body in (("eicar", EICAR), ("gtube", GTUBE))
        ]
        await asyncio.gather(*flows, *tests)

    def password(self, server: MailServer) -> str:
        password = read_secret(self.config.fleet, probe_secret(server.target))
        if password is None:
            raise dialogs.DialogError(f"no password for probe mailbox {server.probe_user}")
        return password

    async def submit(self, server: MailServer, recipient: str, msg: EmailMessage) -> int:
        session = await asyncio.wait_for(
            dialogs.Session.open(server.address, server.submission_port, None, None), STEP_TIMEOUT
        )
        try:
            await asyncio.wait_for(
                dialogs.smtp_hello(
                    session, self.helo, self.context, server.server_name, starttls=True
                ),
                STEP_TIMEOUT,
            )
            await asyncio.wait_for(
                dialogs.smtp_auth_plain(session, server.probe_user, self.password(server)),
                STEP_TIMEOUT,
            )
            code = await asyncio.wait_for(
                dialogs.smtp_send(session, server.probe_user, recipient, as_lines(msg)),
                STEP_TIMEOUT,
            )
            await dialogs.smtp_quit(session)
        finally:
            await session.close()
        return code

    async def arrived(self, server: MailServer, subject: str) -> bool:
        """Whether a message with `subject` is in the probe mailbox; it is removed when found."""
        session = await asyncio.wait_for(
            dialogs.Session.open(
                server.address, server.imaps_port, self.context, server.server_name
            ),
            STEP_TIMEOUT,
        )
        try:
            imap = dialogs.Imap(session)
            await asyncio.wait_for(imap.greeting(), STEP_TIMEOUT)
            login = (
                f"LOGIN {dialogs.imap_quote(server.probe_user)} "
                f"{dialogs.imap_quote(self.password(server))}"
            )
            await asyncio.wait_for(imap.command(login, secret=True), STEP_TIMEOUT)
            await asyncio.wait_for(imap.command("SELECT INBOX"), STEP_TIMEOUT)
            lines = await asyncio.wait_for(
                imap.command(f"UID SEARCH HEADER Subject {dialogs.imap_quote(subject)}"),
                STEP_TIMEOUT,
            )
            uids = [u for line in lines if line.startswith("* SEARCH") for u in line.split()[2:]]
            if uids:
                await imap.command(f"UID STORE {','.join(uids)} +FLAGS.SILENT (\\Deleted)")
                await imap.command("EXPUNGE")
            await imap.logout()
        finally:
            await session.close()
        return bool(uids)

    async def flow(self, source: MailServer, destination: MailServer) -> None:
        subject = f"unops mail flow {source.target} to {destination.target} {secrets.token_hex(8)}"
        msg = message(source.probe_user, destination.probe_user, subject, "End-to-end probe.\n")
        started = time.monotonic()
        success = False
        try:
            code = await self.submit(source, destination.probe_user, msg)
            if code != 250:
                raise dialogs.DialogError(f"probe message refused with {code}")
            while time.monotonic() - started < MAIL_FLOW_TIMEOUT:
                if await self.arrived(destination, subject):
                    success = True
                    break
                await asyncio.sleep(POLL_INTERVAL)
        except (OSError, ssl.SSLError, dialogs.DialogError, TimeoutError) as exc:
            log.info("mail flow %s to %s failed: %s", source.target, destination.target, exc)
        key = (source.target, destination.target)
        self.flows[key] = FlowResult(*key, success, time.monotonic() - started, time.time())
        self.publish(self.families())

    async def selftest(self, server: MailServer, name: str, body: str) -> None:
        msg = message(server.probe_user, server.probe_user, f"unops scanner self-test {name}", "")
        if name == "eicar":
            msg.set_content("The attachment is the EICAR test file.\n")
            msg.add_attachment(
                body.encode("ascii"),
                maintype="application",
                subtype="octet-stream",
                filename="eicar.com",
            )
        else:
            msg.set_content(body + "\n")
        try:
            code = await self.submit(server, server.probe_user, msg)
            refused = code >= 500
            if not refused:
                # 2xx: accepted, the scanner let it through; 4xx: deferred, the scanner is down.
                log.warning(
                    "server %s did not refuse the %s test message: it answered %s",
                    server.target,
                    name,
                    code,
                )
        except (OSError, ssl.SSLError, dialogs.DialogError, TimeoutError) as exc:
            log.info("scanner self-test %s on %s could not run: %s", name, server.target, exc)
            refused = False
        self.selftests[(server.target, name)] = refused
        self.publish(self.families())

    def families(self) -> list[Metric]:
        labels = ["source", "destination"]
        success = GaugeMetricFamily(
            "unops_mail_flow_success",
            "Whether the last probe message reached the probe mailbox on the destination.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "unops_mail_flow_duration_seconds",
            "Time from submission to arrival of the last probe message (or to giving up).",
            labels=labels,
        )
        finished = GaugeMetricFamily(
            "unops_mail_flow_last_run_timestamp_seconds",
            "When the last end-to-end probe finished.",
            labels=labels,
        )
        selftest = GaugeMetricFamily(
            "unops_scanner_selftest_success",
            "Whether the server refused the test message (EICAR or GTUBE), as it must.",
            labels=["server", "test"],
        )
        for (source, destination), result in sorted(self.flows.items()):
            success.add_metric([source, destination], 1.0 if result.success else 0.0)
            duration.add_metric([source, destination], result.duration)
            finished.add_metric([source, destination], result.finished)
        for (server, test), refused in sorted(self.selftests.items()):
            selftest.add_metric([server, test], 1.0 if refused else 0.0)
        return [success, duration, finished, selftest]
