"""The monitoring deploy on the lab: Prometheus scrapes the exporter, SNMPv3 works and v2c does
not, alerts fire and resolve, dead targets read down without stalling the scrape."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.header
import imaplib
import io
import json
import shutil
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import paramiko
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC192_SHA256,
    USM_PRIV_CFB128_AES,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    walk_cmd,
)

from unops import PROJECT_ROOT
from unops.deploying import DeployResult, run_deploy
from unops.exporter import deployment, mailflow
from unops.exporter.config import READER_USER
from unops.lab import paths
from unops.remote import run

pytestmark = pytest.mark.lab

MONITORING_DEPLOY = PROJECT_ROOT / "deploys" / "monitoring.py"
HOSTS = ["mon1", "ap-ga1-01", "ap-ga1-02", "dir1", "mail1", "mail2", "mail3", "mail4", "cms1"]
MON = "198.18.0.30"
PROMETHEUS = f"http://{MON}:{deployment.PROMETHEUS_PORT}"
EXPORTER = f"https://{MON}:{deployment.EXPORTER_PORT}/metrics"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
T = TypeVar("T")


def _deploy() -> DeployResult:
    result = run_deploy("lab", [MONITORING_DEPLOY], limit=HOSTS)
    assert not result.failed_hosts, {
        name: [op.error for op in host.operations if not op.success] or host.error
        for name, host in result.hosts.items()
    }
    return result


@pytest.fixture(scope="module")
def deployed(lab: object) -> tuple[DeployResult, DeployResult]:
    """The monitoring deploy run twice in a row on the monitoring host and what it reads."""
    return _deploy(), _deploy()


def prometheus(path: str, **params: str) -> Any:
    url = f"{PROMETHEUS}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(r["metric"].items())): float(r["value"][1])
        for r in prometheus("/api/v1/query", query=expr)["result"]
    }


def wait_for(what: str, check: Callable[[], T | None], deadline: float = 120) -> T:
    """Poll `check` until it returns something; fail with `what` at the deadline."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {deadline:.0f} s")
        time.sleep(3)


def scrape(timeout: str = "10") -> str:
    context = ssl.create_default_context(cafile=str(paths.CA_CERT))
    request = urllib.request.Request(
        EXPORTER, headers={"X-Prometheus-Scrape-Timeout-Seconds": timeout}
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return str(response.read().decode())


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_second_deploy_changes_nothing(deployed: tuple[DeployResult, DeployResult]) -> None:
    """The second run of the monitoring deploy reports no change on any host."""
    _, second = deployed
    changed = {
        name: [op.name for op in host.operations if op.changed]
        for name, host in second.hosts.items()
        if host.changed
    }
    assert set(second.hosts) == set(HOSTS)
    assert second.changed == 0, changed


def test_prometheus_scrapes_the_exporter_and_every_target_is_up(deployed: object) -> None:
    """Prometheus' targets (the exporter over HTTPS, itself, Alertmanager) are all up."""

    def all_up() -> list[dict[str, Any]] | None:
        targets = prometheus("/api/v1/targets")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every Prometheus target up", all_up)
    assert {t["labels"]["job"] for t in targets} == {"unops-exporter", "prometheus", "alertmanager"}
    exporter = next(t for t in targets if t["labels"]["job"] == "unops-exporter")
    assert exporter["scrapeUrl"].startswith("https://")


def test_alert_rules_are_loaded_with_their_runbooks(deployed: object) -> None:
    """Every rule of monitors/rules is loaded by Prometheus, and the watchdog is firing."""
    groups = prometheus("/api/v1/rules")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"MailServiceDown", "AccessPointDown", "BackupLate", "Watchdog"} <= loaded
    alerts = wait_for(
        "the Watchdog firing",
        lambda: [
            a
            for a in prometheus("/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == "Watchdog" and a["state"] == "firing"
        ],
    )
    assert alerts[0]["annotations"]["runbook_url"].endswith("monitors/runbooks/Watchdog.md")


def _snmp_get(address: str, auth: Any) -> tuple[Any, list[Any]]:
    async def get() -> tuple[Any, list[Any]]:
        engine = SnmpEngine()
        try:
            transport = await UdpTransportTarget.create((address, 161), timeout=2, retries=1)
            error, status, _, values = await get_cmd(
                engine, auth, transport, ContextData(), ObjectType(ObjectIdentity(SYS_UPTIME))
            )
            return error or status, list(values)
        finally:
            engine.close_dispatcher()

    return asyncio.run(get())


def _usm() -> UsmUserData:
    user, auth, priv = deployment.snmp_credentials("lab")
    return UsmUserData(
        user,
        authKey=auth,
        privKey=priv,
        authProtocol=USM_AUTH_HMAC192_SHA256,
        privProtocol=USM_PRIV_CFB128_AES,
    )


@pytest.mark.parametrize("ap", ["ap-ga1-01", "ap-ga1-02"])
def test_snmpv3_authpriv_walk_of_the_access_point_succeeds(
    deployed: object, lab: Any, ap: str
) -> None:
    """pysnmp with SHA-256 and AES reads sysUpTime and walks the interface names."""
    address = str(lab.host(ap).address)
    error, values = _snmp_get(address, _usm())
    assert not error, error
    assert int(values[0][1]) > 0

    async def walk() -> list[str]:
        engine = SnmpEngine()
        try:
            transport = await UdpTransportTarget.create((address, 161), timeout=2, retries=1)
            names = []
            async for err, status, _, rows in walk_cmd(
                engine,
                _usm(),
                transport,
                ContextData(),
                ObjectType(ObjectIdentity(IF_DESCR)),
                lexicographicMode=False,
            ):
                assert not err and not status, (err, status)
                names += [str(value) for _, value in rows]
            return names
        finally:
            engine.close_dispatcher()

    assert "lo" in asyncio.run(walk())


def test_associated_clients_are_the_sum_of_the_radios_rows(deployed: object) -> None:
    """Each lab access point serves one client count per radio in its model's column
    (wifi.toml); the exporter reads them over SNMPv3 and exports their sum."""
    wanted = float(sum(deployment.LAB_SIMULATED_CLIENTS))
    clients = wait_for(
        "associated clients of both access points",
        lambda: count(f"unops_ap_associated_clients == {wanted}", 2),
    )
    assert {dict(labels)["ap"] for labels in clients} == {"ap-ga1-01", "ap-ga1-02"}


@pytest.mark.parametrize("ap", ["ap-ga1-01"])
def test_v2c_public_and_noauthnopriv_get_no_answer(deployed: object, lab: Any, ap: str) -> None:
    """A v2c request with 'public' times out; a USM user without auth and privacy is refused."""
    address = str(lab.host(ap).address)
    error, _ = _snmp_get(address, CommunityData("public", mpModel=1))
    assert "timeout" in str(error).lower(), error
    error, _ = _snmp_get(address, UsmUserData(deployment.SNMP_USER))
    assert error, "noAuthNoPriv was answered"


def test_promtool_check_metrics_finds_nothing_in_a_real_scrape(deployed: object) -> None:
    """`promtool check metrics` on the exporter's live answer reports no problem at all."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package")
    text = scrape()
    assert "unops_probe_success" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


MAIL_SERVERS = ["mail1", "mail2", "mail3", "mail4"]


def count(expr: str, wanted: int) -> dict[tuple[tuple[str, str], ...], float] | None:
    """The series of `expr` if there are exactly `wanted` of them, else None (for wait_for)."""
    found = query(expr)
    return found if len(found) == wanted else None


def test_probe_mailboxes_log_in_and_mail_flows_from_each_server_to_the_next(
    deployed: object,
) -> None:
    """The probe mailbox homed on each server logs in over IMAP; a message submitted on each
    server reaches the probe mailbox on the next, in under the flow timeout; every server
    refuses the EICAR and GTUBE test messages."""
    wait_for(
        "the IMAP login probe up on every mail server",
        lambda: count('unops_probe_success{kind="imap_login"} == 1', len(MAIL_SERVERS)),
    )
    flows = wait_for(
        "mail flowing on every route",
        lambda: count("unops_mail_flow_success == 1", len(MAIL_SERVERS)),
        deadline=360,
    )
    routes = {(dict(labels)["source"], dict(labels)["destination"]) for labels in flows}
    assert routes == {
        (source, MAIL_SERVERS[(i + 1) % len(MAIL_SERVERS)]) for i, source in enumerate(MAIL_SERVERS)
    }
    for labels, seconds in query("unops_mail_flow_duration_seconds").items():
        assert 0 < seconds < mailflow.MAIL_FLOW_TIMEOUT, labels
    wait_for(
        "EICAR and GTUBE refused on every mail server",
        lambda: count("unops_scanner_selftest_success == 1", 2 * len(MAIL_SERVERS)),
        deadline=360,
    )


def test_every_tls_endpoint_and_directory_server_exports_its_certificate_expiry(
    deployed: object,
) -> None:
    """Each mail port with TLS and each directory server (StartTLS) exports the notAfter of
    the certificate it presented: in the future, and the same as the lab CA issued."""
    expiry = wait_for(
        "certificate expiry of the provider and the four replicas",
        lambda: count('unops_probe_ssl_earliest_cert_expiry{kind="ldap"}', 1 + len(MAIL_SERVERS)),
    )
    mail = query('unops_probe_ssl_earliest_cert_expiry{kind=~"smtp|submission|imaps"}')
    assert len(mail) == 3 * len(MAIL_SERVERS)
    now = time.time()
    for labels, not_after in [*expiry.items(), *mail.items()]:
        assert not_after > now + 14 * 86400, labels


def test_hosts_are_read_as_an_unprivileged_account_that_may_run_one_command(
    deployed: object,
) -> None:
    """Backup records and queue sizes read up on every host through unops-monitor; the same key
    does not log in as root, asks nothing else, and the account cannot read backup secrets."""
    wait_for(
        "backup records readable on the six backed-up hosts",
        lambda: count('unops_probe_success{kind="backup_records"} == 1', 6),
    )
    wait_for(
        "queue sizes readable on the four mail servers",
        lambda: count('unops_probe_success{kind="mail_queue"} == 1', len(MAIL_SERVERS)),
    )
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(deployment.records_key("lab")[0]))

    def connect(user: str) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(paths.KNOWN_HOSTS))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "198.18.0.11",
            username=user,
            pkey=key,
            timeout=10,
            look_for_keys=False,
            allow_agent=False,
        )
        return client

    with pytest.raises(paramiko.AuthenticationException):
        connect("root")
    client = connect(READER_USER)
    try:
        _, stdout, stderr = client.exec_command("cat /etc/unops/backup/restic.pass", timeout=10)
        assert stdout.channel.recv_exit_status() == 2
        assert stdout.read() == b""
        assert b"answers 'records' or 'queue' only" in stderr.read()
    finally:
        client.close()
    denied = run(
        "mail1", ["runuser", "-u", READER_USER, "--", "cat", "/etc/unops/backup/restic.pass"]
    )
    assert not denied.ok and "Permission denied" in denied.stderr, denied


def test_a_probe_mailbox_is_a_real_account_a_plain_imap_client_can_use(deployed: object) -> None:
    """imaplib logs in to probe-mail2@ict.example on mail2 with the generated password, over
    verified TLS; a wrong password is refused."""
    address = "probe-mail2@ict.example"
    secret = (paths.SECRETS_DIR / "lab" / "mail" / "probe" / "mail2").read_text().strip()
    context = ssl.create_default_context(cafile=str(paths.CA_CERT))
    with imaplib.IMAP4_SSL("198.18.0.12", 993, ssl_context=context, timeout=30) as client:
        client.sock.settimeout(30)
        with pytest.raises(imaplib.IMAP4.error):
            client.login(address, secret + "x")
    with imaplib.IMAP4_SSL("198.18.0.12", 993, ssl_context=context, timeout=30) as client:
        assert client.login(address, secret)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        client.logout()


def test_directory_sync_leaves_the_probe_mailboxes_alone(deployed: object) -> None:
    """A sync of the estate's roster with --prune would delete or disable no probe mailbox:
    they carry no mission, and sync manages mission mailboxes only."""
    done = subprocess.run(
        [
            str(PROJECT_ROOT / ".venv" / "bin" / "unops"),
            "directory",
            "sync",
            str(PROJECT_ROOT / "inventory" / "estate" / "mailboxes.csv"),
            "--prune",
            "--dry",
            "--json",
            "--fleet",
            "lab",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    touched = json.dumps({k: v for k, v in plan.items() if k != "added"})
    assert "probe-" not in touched, touched


@contextmanager
def stopped(host: str, stop: str, start: str) -> Iterator[str]:
    """`systemctl stop <stop>` on `host`; `systemctl start <start>` after, whatever happens."""
    run(host, f"systemctl stop {stop}", check=True)
    try:
        yield host
    finally:
        run(host, f"systemctl start {start}", check=True)


@pytest.fixture
def stopped_clamd(lab: Any) -> Iterator[str]:
    """clamd stopped on mail4 for the test."""
    with stopped("mail4", "clamav-daemon.service", "clamav-daemon.service") as host:
        yield host


def test_scanner_self_test_reads_0_while_clamd_is_down_and_1_again_after(
    deployed: object, stopped_clamd: str
) -> None:
    """clamd stopped on mail4: its EICAR self-test reads 0 (the message is deferred, not
    refused) while GTUBE, refused by rspamd, still reads 1; started again: EICAR reads 1."""
    server = stopped_clamd

    def eicar(value: int) -> bool:
        expr = f'unops_scanner_selftest_success{{server="{server}",test="eicar"}} == {value}'
        return bool(query(expr))

    wait_for(f"the EICAR self-test of {server} reading 0", lambda: eicar(0), deadline=360)
    gtube = f'unops_scanner_selftest_success{{server="{server}",test="gtube"}}'
    assert list(query(gtube).values()) == [1.0]
    run(server, "systemctl start clamav-daemon.service", check=True)
    wait_for(f"the EICAR self-test of {server} reading 1", lambda: eicar(1), deadline=360)


def _alert_state(name: str, **labels: str) -> str | None:
    for alert in prometheus("/api/v1/alerts")["alerts"]:
        if alert["labels"]["alertname"] == name and all(
            alert["labels"].get(k) == v for k, v in labels.items()
        ):
            return str(alert["state"])
    return None


@pytest.fixture
def stopped_snmpd(lab: Any) -> Iterator[str]:
    """snmpd stopped on ap-ga1-02 for the test."""
    with stopped("ap-ga1-02", "snmpd.service", "snmpd.service") as host:
        yield host


def test_access_point_down_fires_and_resolves(deployed: object, stopped_snmpd: str) -> None:
    """snmpd stopped: unops_ap_up reads 0, AccessPointDown fires; started: it resolves."""
    ap = stopped_snmpd
    wait_for("unops_ap_up reading 0", lambda: query(f'unops_ap_up{{ap="{ap}"}} == 0'))
    wait_for(
        "AccessPointDown firing",
        lambda: _alert_state("AccessPointDown", ap=ap) == "firing",
        deadline=420,
    )
    # Other access points keep reading up: the down one does not drag the collector down.
    assert query('unops_ap_up{ap="ap-ga1-01"}') and all(
        v == 1.0 for v in query('unops_ap_up{ap="ap-ga1-01"}').values()
    )
    run(ap, "systemctl start snmpd.service", check=True)
    wait_for("AccessPointDown resolving", lambda: _alert_state("AccessPointDown", ap=ap) is None)


def subjects(address: str, server: str) -> list[str]:
    """The subjects in the INBOX of an office mailbox, read with imaplib over verified TLS."""
    local = address.partition("@")[0]
    secret = (paths.SECRETS_DIR / "lab" / "mail" / "office" / local).read_text().strip()
    context = ssl.create_default_context(cafile=str(paths.CA_CERT))
    host = f"198.18.0.{10 + MAIL_SERVERS.index(server) + 1}"
    with imaplib.IMAP4_SSL(host, 993, ssl_context=context, timeout=30) as client:
        client.login(address, secret)
        client.select("INBOX", readonly=True)
        _, found = client.search(None, "ALL")
        ids = found[0].split()
        if not ids:
            return []
        _, data = client.fetch(b",".join(ids), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        client.logout()
    headers = [part[1] for part in data if isinstance(part, tuple)]
    return [
        str(email.header.make_header(email.header.decode_header(h.decode().split(":", 1)[1])))
        .replace("\r\n", "")
        .strip()
        for h in headers
    ]


@pytest.fixture
def stopped_postfix(lab: Any) -> Iterator[str]:
    """Postfix stopped on mail3 for the test."""
    server = "mail3"
    if not query(f'unops_probe_success{{kind="smtp",target="{server}"}} == 1'):
        pytest.fail(f"SMTP on {server} does not probe up before the test: deploy mail first")
    with stopped(server, "postfix.service postfix@-.service", "postfix.service") as host:
        yield host


def test_postfix_stopped_reads_down_and_mail_service_down_fires_then_resolves(
    deployed: object, stopped_postfix: str
) -> None:
    """Postfix stopped: the server's SMTP probes read 0 and MailServiceDown fires for them;
    started again: they read 1 and the alert resolves."""
    server = stopped_postfix

    def hold_stopped() -> None:
        # The lab is shared: a mail deploy or test of another session may start Postfix again.
        run(server, "systemctl stop postfix.service postfix@-.service", check=True)

    for kind in ("smtp", "submission", "submissions"):

        def reads_zero(kind: str = kind) -> bool:
            hold_stopped()
            return bool(query(f'unops_probe_success{{kind="{kind}",target="{server}"}} == 0'))

        wait_for(f"{kind} on {server} reading 0", reads_zero)

    def firing() -> bool:
        hold_stopped()
        return _alert_state("MailServiceDown", kind="smtp", target=server) == "firing"

    wait_for("MailServiceDown firing", firing, deadline=300)

    def flow_from_server_broken() -> bool:
        hold_stopped()
        return bool(query(f'unops_mail_flow_success{{source="{server}"}} == 0'))

    # The mail flow runs in rounds of its own (every 2 min, each waiting up to 90 s).
    wait_for(f"mail flow from {server} reading 0", flow_from_server_broken, deadline=360)

    # On-call is paged: Alertmanager's mail reaches the on-call mailbox (homed on mail1).
    def paged() -> list[str]:
        hold_stopped()
        return [s for s in subjects("oncall@ict.example", "mail1") if "MailServiceDown" in s]

    page = wait_for("the MailServiceDown page in the on-call mailbox", paged, deadline=180)
    assert "FIRING" in page[0], page
    # The other servers keep reading up (some of them at least: the lab is shared).
    assert query(f'unops_probe_success{{kind="smtp",target!="{server}"}} == 1')
    run(server, "systemctl start postfix.service", check=True)
    wait_for(
        "MailServiceDown resolving",
        lambda: _alert_state("MailServiceDown", kind="smtp", target=server) is None,
    )
    assert query(f'unops_probe_success{{kind="smtp",target="{server}"}} == 1')


@contextmanager
def blackholed(targets: dict[str, str]) -> Iterator[list[str]]:
    """In mon1's network namespace, the `targets` (name: address) silently dropped: their
    addresses map to a link-layer address nobody has, so packets go unanswered.
    (The container itself may not change its neighbours; the control machine, root, may.)"""
    state = json.loads(paths.STATE_FILE.read_text())
    netns = state["hosts"]["mon1"]["netns"]

    def in_mon1(*command: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", netns, *command], capture_output=True, text=True, check=True
        )
        return done.stdout

    device = in_mon1("ip", "-o", "route", "get", "198.18.0.11").split(" dev ")[1].split()[0]
    for address in targets.values():
        in_mon1(
            "ip",
            "neigh",
            "replace",
            address,
            "lladdr",
            "02:00:00:00:de:ad",
            "dev",
            device,
            "nud",
            "permanent",
        )
    try:
        yield list(targets)
    finally:
        for address in targets.values():
            subprocess.run(
                ["ip", "netns", "exec", netns, "ip", "neigh", "del", address, "dev", device],
                check=False,
            )


def test_blackholed_targets_read_down_and_the_scrape_still_completes(deployed: object) -> None:
    """With half the targets blackholed, Prometheus' scrapes still succeed inside their
    timeout, and exactly the blackholed targets' probes read 0; the others read as before."""
    # Half of the hosts the exporter reads: two mail servers (ports, replica, records, queue)
    # and one of the two access points.
    dead = {"mail1": "198.18.0.11", "mail2": "198.18.0.12", "ap-ga1-01": "198.18.0.60"}
    baseline = scrape()
    before = samples(baseline, "unops_probe_success")
    with blackholed(dead) as names:
        started = time.time()

        def scraped_since() -> dict[str, Any] | None:
            targets = prometheus("/api/v1/targets")["activeTargets"]
            exporter = next(t for t in targets if t["labels"]["job"] == "unops-exporter")
            last = dt.datetime.strptime(exporter["lastScrape"][:19], "%Y-%m-%dT%H:%M:%S")
            # A scrape that began after the targets were blackholed, and has finished.
            return exporter if last.replace(tzinfo=dt.UTC).timestamp() > started + 1 else None

        exporter = wait_for("a Prometheus scrape with the targets blackholed", scraped_since)
        after = query("unops_probe_success")
        ap = query("unops_ap_up")
    # A scrape over Prometheus' timeout is marked down with "context deadline exceeded".
    assert exporter["health"] == "up", exporter["lastError"]
    for labels, value in after.items():
        own = tuple((k, v) for k, v in labels if k in ("kind", "target"))
        if dict(own)["target"] in names:
            assert value == 0.0, labels
        else:
            assert value == before[own], labels
    assert [v for k, v in ap.items() if ("ap", "ap-ga1-01") in k] == [0.0]
    assert [v for k, v in ap.items() if ("ap", "ap-ga1-02") in k] == [1.0]
