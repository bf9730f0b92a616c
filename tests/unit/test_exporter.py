"""The exporter's core and probes, against fake servers on loopback (no lab, no root)."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from pysnmp.proto.rfc1902 import Gauge32, ObjectName
from pysnmp.proto.rfc1905 import EndOfMibView
from test_exporter_fakes import Pki, imap_speaker, make_pki, serving, silent, smtp_speaker

from unops.errors import ExporterError
from unops.exporter import snmp
from unops.exporter.availability import AvailabilityCollector
from unops.exporter.config import AccessPointTarget, Endpoint, ExporterConfig, MailServer
from unops.exporter.core import DEFAULT_BUDGET, PROBE_SHARE, Exporter, SourceCollector, budget_for
from unops.exporter.server import make_app, parse_listen, serve
from unops.exporter.snmp import AccessPointCollector, SnmpPoller


def samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    result = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def value(exposition: bytes, name: str, **labels: str) -> float:
    return samples(exposition)[(name, tuple(sorted(labels.items())))]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(tmp_path: Path, *endpoints: Endpoint, **extra: object) -> ExporterConfig:
    return ExporterConfig(
        fleet="test",
        base_dn="dc=test",
        endpoints=endpoints,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(autouse=True)
def _secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    monkeypatch.setattr("unops.secrets.SECRETS_DIR", folder)
    return folder


def test_budget_fits_inside_the_scrape_timeout_header() -> None:
    """The round gets the scrape timeout Prometheus sends minus a margin, or a default."""
    assert budget_for("10") == pytest.approx(9.5)
    assert budget_for(None) == DEFAULT_BUDGET
    assert budget_for("soon") == DEFAULT_BUDGET
    assert budget_for("0.1") > 0


def scrape_smtp(pki: Pki) -> bytes:
    """One scrape of an SMTP probe of a speaker that presents `pki`'s certificate."""
    with serving(smtp_speaker(pki.server_context())) as port:
        endpoint = Endpoint("smtp", "mail1", "127.0.0.1", port, "starttls", "mail1.test")
        cfg = ExporterConfig("test", "dc=test", endpoints=(endpoint,), ca_file=str(pki.ca_file))
        exporter = Exporter([AvailabilityCollector(cfg)])
        try:
            return exporter.scrape(5.0)
        finally:
            exporter.stop()


def test_smtp_probe_completes_starttls_and_reads_certificate_expiry(tmp_path: Path) -> None:
    """A server that greets, offers STARTTLS and completes the handshake reads as up."""
    pki = make_pki(tmp_path)
    out = scrape_smtp(pki)
    assert value(out, "unops_probe_success", kind="smtp", target="mail1") == 1.0
    expiry = value(out, "unops_probe_ssl_earliest_cert_expiry", kind="smtp", target="mail1")
    assert expiry == pki.not_after.timestamp()


def test_certificate_expiry_is_the_earliest_in_the_verified_chain(tmp_path: Path) -> None:
    """A CA that expires before the server's certificate is what the expiry reads, as in
    blackbox_exporter: renewing the leaf alone would not keep the endpoint trusted."""
    pki = make_pki(tmp_path, ca_days=10)
    out = scrape_smtp(pki)
    expiry = value(out, "unops_probe_ssl_earliest_cert_expiry", kind="smtp", target="mail1")
    assert expiry == pki.ca_not_after.timestamp() < pki.not_after.timestamp()


def test_smtp_probe_reads_down_when_certificate_is_not_trusted(tmp_path: Path) -> None:
    """A certificate from a CA the exporter does not trust fails the probe: TLS is verified."""
    pki = make_pki(tmp_path)
    (tmp_path / "other").mkdir()
    other = make_pki(tmp_path / "other")
    with serving(smtp_speaker(pki.server_context())) as port:
        endpoint = Endpoint("smtp", "mail1", "127.0.0.1", port, "starttls", "mail1.test")
        cfg = ExporterConfig("test", "dc=test", endpoints=(endpoint,), ca_file=str(other.ca_file))
        exporter = Exporter([AvailabilityCollector(cfg)])
        try:
            out = exporter.scrape(5.0)
        finally:
            exporter.stop()
    assert value(out, "unops_probe_success", kind="smtp", target="mail1") == 0.0


def test_submission_without_auth_after_tls_reads_down(tmp_path: Path) -> None:
    """Submission must offer AUTH once TLS is up; a server that does not reads as down."""
    pki = make_pki(tmp_path)
    with (
        serving(smtp_speaker(pki.server_context(), auth=False)) as bare,
        serving(smtp_speaker(pki.server_context(), auth=True)) as good,
    ):
        cfg = ExporterConfig(
            "test",
            "dc=test",
            endpoints=(
                Endpoint("submission", "mail1", "127.0.0.1", bare, "starttls", "mail1.test"),
                Endpoint("submission", "mail2", "127.0.0.1", good, "starttls", "mail1.test"),
            ),
            ca_file=str(pki.ca_file),
        )
        exporter = Exporter([AvailabilityCollector(cfg)])
        try:
            out = exporter.scrape(5.0)
        finally:
            exporter.stop()
    assert value(out, "unops_probe_success", kind="submission", target="mail1") == 0.0
    assert value(out, "unops_probe_success", kind="submission", target="mail2") == 1.0


def test_dead_and_silent_targets_read_down_without_failing_the_round(tmp_path: Path) -> None:
    """A closed port and a server that never speaks read as down; the collector still succeeds."""
    with serving(silent()) as hung:
        cfg = config(
            tmp_path,
            Endpoint("smtp", "closed", "127.0.0.1", closed_port(), "starttls", "x.test"),
            Endpoint("imaps", "hung", "127.0.0.1", hung, "implicit", "x.test"),
        )
        exporter = Exporter([AvailabilityCollector(cfg)])
        try:
            out = exporter.scrape(1.0)
        finally:
            exporter.stop()
    assert value(out, "unops_probe_success", kind="smtp", target="closed") == 0.0
    assert value(out, "unops_probe_success", kind="imaps", target="hung") == 0.0
    assert value(out, "unops_collector_success", collector="availability") == 1.0


def test_imap_login_with_the_probe_password_from_the_secrets(
    tmp_path: Path, _secrets: Path
) -> None:
    """The login probe reads the probe mailbox's password from the secrets and logs in."""
    pki = make_pki(tmp_path)
    (_secrets / "test" / "mail" / "probe").mkdir(parents=True)
    secret = _secrets / "test" / "mail" / "probe" / "mail1"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    with serving(imap_speaker("probe-mail1@test", "s3cret"), pki.server_context()) as port:
        servers = (
            MailServer("mail1", "127.0.0.1", "mail1.test", "probe-mail1@test", imaps_port=port),
            # No secret for mail2's probe mailbox: its login reads as down, with a reason.
            MailServer("mail2", "127.0.0.1", "mail1.test", "probe-mail2@test", imaps_port=port),
        )
        cfg = ExporterConfig("test", "dc=test", mail_servers=servers, ca_file=str(pki.ca_file))
        exporter = Exporter([AvailabilityCollector(cfg)])
        try:
            out = exporter.scrape(5.0)
        finally:
            exporter.stop()
    assert value(out, "unops_probe_success", kind="imap_login", target="mail1") == 1.0
    assert value(out, "unops_probe_success", kind="imap_login", target="mail2") == 0.0


class Hanging(SourceCollector):
    name = "hanging"

    async def gather(self, budget: float) -> list[Metric]:
        await asyncio.sleep(3600)
        return []


class Recording(SourceCollector):
    name = "recording"
    budgets: list[float]

    async def gather(self, budget: float) -> list[Metric]:
        self.budgets = [*getattr(self, "budgets", []), budget]
        return []


class Broken(SourceCollector):
    name = "broken"

    async def gather(self, budget: float) -> list[Metric]:
        raise RuntimeError("a bug in a collector")


def test_hanging_or_broken_collector_is_marked_failed_and_others_still_export(
    tmp_path: Path,
) -> None:
    """A collector that overruns or raises reads as failed; the scrape still answers."""
    cfg = config(tmp_path, Endpoint("smtp", "closed", "127.0.0.1", closed_port(), "none", "x"))
    exporter = Exporter([Hanging(), Broken(), AvailabilityCollector(cfg)])
    try:
        out = exporter.scrape(0.5)
    finally:
        exporter.stop()
    assert value(out, "unops_collector_success", collector="hanging") == 0.0
    assert value(out, "unops_collector_success", collector="broken") == 0.0
    assert value(out, "unops_collector_success", collector="availability") == 1.0
    assert value(out, "unops_probe_success", kind="smtp", target="closed") == 0.0


def test_families_of_the_same_name_from_two_collectors_are_exported_once(
    tmp_path: Path,
) -> None:
    """Two collectors that both export unops_probe_success give one family in the exposition."""
    first = config(tmp_path, Endpoint("smtp", "a", "127.0.0.1", closed_port(), "none", "x"))
    second = config(tmp_path, Endpoint("imap", "b", "127.0.0.1", closed_port(), "none", "x"))
    one, two = AvailabilityCollector(first), AvailabilityCollector(second)
    two.name = "availability-2"
    exporter = Exporter([one, two])
    try:
        out = exporter.scrape(1.0).decode()
    finally:
        exporter.stop()
    assert out.count("# TYPE unops_probe_success gauge") == 1
    assert 'unops_probe_success{kind="smtp",target="a"} 0.0' in out
    assert 'unops_probe_success{kind="imap",target="b"} 0.0' in out


def test_access_point_without_an_agent_reads_down(tmp_path: Path) -> None:
    """An SNMPv3 request to a port with no agent reads as down, through the shared engine."""
    cfg = ExporterConfig(
        "test",
        "dc=test",
        access_points=(AccessPointTarget("ap1", "127.0.0.1", closed_port()),),
    )
    poller = SnmpPoller("user", "authpassword1", "privpassword1")
    exporter = Exporter([AccessPointCollector(cfg, poller)])
    try:
        out = exporter.scrape(1.0)
    finally:
        exporter.stop()
    assert value(out, "unops_ap_up", ap="ap1") == 0.0
    assert value(out, "unops_collector_success", collector="access_points") == 1.0


def test_metrics_endpoint_uses_the_scrape_timeout_header(tmp_path: Path) -> None:
    """/metrics runs a round whose budget is the header Prometheus sends minus the margin."""
    with serving(silent()) as hung:
        cfg = config(tmp_path, Endpoint("imaps", "hung", "127.0.0.1", hung, "implicit", "x"))
        recording = Recording()
        exporter = Exporter([AvailabilityCollector(cfg), recording])
        httpd = serve(exporter, "127.0.0.1:0")
        port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/metrics",
                headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                out = response.read()
        finally:
            httpd.shutdown()
            exporter.stop()
    assert value(out, "unops_probe_success", kind="imaps", target="hung") == 0.0
    assert recording.budgets == [pytest.approx(1.0 * PROBE_SHARE)]


def test_listen_address_must_be_a_literal_address_and_port() -> None:
    """--listen takes ADDRESS:PORT; a name or a missing port is refused with the accepted form."""
    assert parse_listen("198.18.0.30:9470") == ("198.18.0.30", 9470)
    assert parse_listen("[::1]:9470") == ("::1", 9470)
    for bad in ("mon1:9470", "198.18.0.30", "198.18.0.30:99999"):
        with pytest.raises(ExporterError, match="ADDRESS:PORT"):
            parse_listen(bad)


def test_index_page_does_not_probe(tmp_path: Path) -> None:
    """Only /metrics runs a round; other paths answer at once."""
    exporter = Exporter([Hanging()])
    app = make_app(exporter)
    status: list[str] = []
    body = b"".join(app({"PATH_INFO": "/"}, lambda s, h: status.append(s)))
    assert status == ["200 OK"] and b"/metrics" in body
    assert exporter.self_collector.results == {}


class Slow(SourceCollector):
    name = "slow"
    rounds = 0

    async def gather(self, budget: float) -> list[Metric]:
        Slow.rounds += 1
        await asyncio.sleep(0.5)
        return []


def test_overlapping_scrapes_share_the_running_round() -> None:
    """Two scrapes at once run one round between them and both get its results."""
    exporter = Exporter([Slow()])
    Slow.rounds = 0
    try:
        with ThreadPoolExecutor(2) as pool:
            outputs = list(pool.map(lambda _: exporter.scrape(2.0), range(2)))
    finally:
        exporter.stop()
    assert Slow.rounds == 1
    assert all(value(out, "unops_collector_success", collector="slow") == 1.0 for out in outputs)


CLIENTS = "1.3.6.1.4.1.9.9.273.1.1.2.1.1"


def _scripted_bulk(answers: list[list[tuple[str, object]]], asked: list[str]) -> object:
    """A stand-in for pysnmp's bulk_cmd answering one scripted list of rows per request."""

    async def bulk(*args: object, **kwargs: object) -> tuple[None, int, int, list[object]]:
        # The request is an unresolved ObjectType(ObjectIdentity(oid)): its repr names the OID.
        identity = vars(args[6])["_ObjectType__args"][0]
        asked.append(repr(identity).split("'")[1])
        rows = answers.pop(0)
        return None, 0, 0, [(ObjectName(oid), value) for oid, value in rows]

    return bulk


def test_associated_clients_are_the_sum_of_the_column_over_several_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows across two GETBULK answers are summed, each request starting after the last row;
    the first OID past the column ends the walk."""
    first = [(f"{CLIENTS}.{n}", Gauge32(1)) for n in range(1, 9)]
    second = [(f"{CLIENTS}.9", Gauge32(5)), (f"{CLIENTS}.10", Gauge32(0)), ("1.3.6.2", Gauge32(9))]
    asked: list[str] = []
    monkeypatch.setattr(snmp, "bulk_cmd", _scripted_bulk([first, second], asked))
    poller = SnmpPoller("user", "authpassword1", "privpassword1")
    assert asyncio.run(poller._column_sum(None, None, CLIENTS)) == 13  # type: ignore[arg-type]
    assert asked == [CLIENTS, f"{CLIENTS}.8"]


def test_an_agent_without_the_clients_column_exports_no_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An agent whose tree has nothing under the column answers the next OID or an end of
    view: no count at all, rather than a false zero."""
    for answer in ([("1.3.6.1.6.3.1", Gauge32(4))], [(f"{CLIENTS}.1", EndOfMibView())]):
        monkeypatch.setattr(snmp, "bulk_cmd", _scripted_bulk([answer], []))
        poller = SnmpPoller("user", "authpassword1", "privpassword1")
        total = poller._column_sum(None, None, CLIENTS)  # type: ignore[arg-type]
        assert asyncio.run(total) is None
