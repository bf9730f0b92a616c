"""The directory on the lab fleet: slapd on dir1, replicas on the mail servers, real ldap3 clients.

Every check binds for real over the network with StartTLS (or LDAPS) and verifies the lab CA.
The module leaves the directory as the estate's roster describes it, so that other lab tests
(mail delivery, logins) find the 792 mailboxes they expect.
"""

from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import LEVEL, NONE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from unops import PROJECT_ROOT
from unops.deploying import run_deploy
from unops.directory import admin_dn, base_dn, client, mailbox_dn, mailboxes_dn, service_dn
from unops.estate import DEFAULT_ROOT, Estate, load_estate
from unops.lab import keys

pytestmark = pytest.mark.lab

DEPLOY = PROJECT_ROOT / "deploys" / "directory.py"
ROSTER = DEFAULT_ROOT / "mailboxes.csv"
UNOPS = [sys.executable, "-m", "unops"]
# Replication waits: a deadline for a precondition, not a measured time.
REPLICATION_DEADLINE_S = 90


@pytest.fixture(scope="module")
def estate() -> Estate:
    return load_estate()


@pytest.fixture(scope="module")
def base(estate: Estate) -> str:
    return base_dn(estate.zone)


@pytest.fixture(scope="module")
def deployed(lab: object) -> list[list[str]]:
    """The directory deploy run twice over dir1 and the mail servers: what each run changed."""
    changes = []
    for _ in range(2):
        result = run_deploy("lab", [DEPLOY], limit=["directory", "mail"])
        if result.failed_hosts:
            pytest.fail(f"the directory deploy failed on {result.failed_hosts}: {result.to_dict()}")
        changes.append(
            [
                f"{name}: {op.name}"
                for name, host in sorted(result.hosts.items())
                for op in host.operations
                if op.changed
            ]
        )
    return changes


def sync(roster: Path, *extra: str) -> dict[str, object]:
    """`unops -vv directory sync ROSTER --json`: its report; the admin password is in no output."""
    done = subprocess.run(
        [*UNOPS, "-vv", "directory", "sync", str(roster), "--json", *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"unops directory sync failed: {done.stderr}")
    assert client.existing_secret("lab", "admin") not in done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def synced(deployed: list[int]) -> list[dict[str, object]]:
    """The estate's roster synced twice: what each run reported."""
    return [sync(ROSTER), sync(ROSTER)]


@pytest.fixture(scope="module")
def probe(
    synced: object, estate: Estate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An extra account, added by sync for these tests and pruned again afterwards."""
    mission = next(m for m in estate.missions if m.mail_domain)
    address = f"lab.directory.probe@{mission.mail_domain}"
    roster = tmp_path_factory.mktemp("roster") / "with-probe.csv"
    roster.write_text(
        ROSTER.read_text(encoding="utf-8").rstrip("\n")
        + f"\n{address},{mission.code},,Directory Probe,1024,active\n",
        encoding="utf-8",
    )
    sync(roster)
    yield address
    sync(ROSTER, "--prune")


def endpoints(estate: Estate) -> list[client.Endpoint]:
    return client.endpoints(estate, "lab", "directory") + client.endpoints(estate, "lab", "mail")


def bind(endpoint: client.Endpoint, user: str, password: str, *, ldaps: bool = False) -> Connection:
    """A connection bound over StartTLS (or LDAPS) verifying the lab CA, or an LDAPException."""
    tls = Tls(
        ca_certs_file=str(client.ca_file("lab")),
        validate=ssl.CERT_REQUIRED,
        valid_names=[endpoint.fqdn],
    )
    server = Server(
        endpoint.address,
        port=636 if ldaps else 389,
        use_ssl=ldaps,
        tls=tls,
        get_info=NONE,
        connect_timeout=5,
    )
    conn = Connection(
        server,
        user=user,
        password=password,
        client_strategy=SYNC,
        receive_timeout=10,
        raise_exceptions=True,
    )
    conn.open()
    if not ldaps:
        conn.start_tls()
    conn.bind()
    return conn


def service(endpoint: client.Endpoint, base: str, account: str) -> Connection:
    return bind(endpoint, service_dn(base, account), client.existing_secret("lab", account))


def lookup(conn: Connection, base: str, address: str, attributes: list[str]) -> dict[str, object]:
    conn.search(
        mailboxes_dn(base),
        f"(mail={escape_filter_chars(address)})",
        search_scope=LEVEL,
        attributes=attributes,
    )
    if not conn.entries:
        return {}
    # ldap3 lists every requested attribute; one the server did not return is an empty list.
    return {k: v for k, v in conn.entries[0].entry_attributes_as_dict.items() if v}


def wait_until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + REPLICATION_DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {REPLICATION_DEADLINE_S} s")
        time.sleep(0.5)


def test_second_deploy_changes_nothing(deployed: list[list[str]]) -> None:
    """Run twice, the directory deploy reports no change on the second run."""
    assert deployed[1] == [], "the second run changed: " + "; ".join(deployed[1])


def test_every_server_answers_tls_bind_and_search(
    synced: object, estate: Estate, base: str
) -> None:
    """The provider and each replica accept postfix's bind over StartTLS and find a mailbox."""
    box = estate.mailboxes[0]
    for endpoint in endpoints(estate):
        conn = service(endpoint, base, "postfix")
        found = lookup(conn, base, box.address, ["mail", "unopsHomeServer"])
        conn.unbind()
        assert found.get("unopsHomeServer") == [box.server], endpoint.name


def test_ldaps_bind_and_search(synced: object, estate: Estate, base: str) -> None:
    """LDAPS on 636 answers with a certificate the lab CA verifies."""
    provider = client.endpoints(estate, "lab", "directory")[0]
    conn = bind(
        provider,
        service_dn(base, "exporter"),
        client.existing_secret("lab", "exporter"),
        ldaps=True,
    )
    assert client.context_csn(conn, base), "the provider has no contextCSN"
    conn.unbind()


def test_simple_bind_without_tls_is_refused(deployed: object, estate: Estate, base: str) -> None:
    """A correct password sent on a plain connection is refused: confidentiality required."""
    for endpoint in endpoints(estate):
        conn = Connection(
            Server(endpoint.address, port=389, get_info=NONE, connect_timeout=5),
            user=service_dn(base, "postfix"),
            password=client.existing_secret("lab", "postfix"),
        )
        assert not conn.bind(), endpoint.name
        assert conn.result["result"] == 13, conn.result  # confidentialityRequired
        conn.unbind()


def test_anonymous_access_is_refused(synced: object, estate: Estate, base: str) -> None:
    """An anonymous bind is refused, and a search without a bind returns nothing."""
    provider = client.endpoints(estate, "lab", "directory")[0]
    with pytest.raises(LDAPException):
        bind(provider, "", "")
    tls = Tls(
        ca_certs_file=str(client.ca_file("lab")),
        validate=ssl.CERT_REQUIRED,
        valid_names=[provider.fqdn],
    )
    conn = Connection(Server(provider.address, tls=tls, get_info=NONE, connect_timeout=5))
    conn.open()
    conn.start_tls()
    conn.search(mailboxes_dn(base), "(objectClass=*)", search_scope=LEVEL)
    assert conn.entries == [] and conn.result["result"] != 0
    conn.unbind()


def test_postfix_cannot_read_passwords_or_quotas(probe: str, estate: Estate, base: str) -> None:
    """postfix sees routing attributes only: no userPassword, no quota; the replicator sees both."""
    provider = client.endpoints(estate, "lab", "directory")[0]
    admin, _ = client.admin_connection(estate, "lab")
    client.set_password(admin, base, probe, "probe-password-1")
    admin.unbind()
    wanted = ["mail", "userPassword", "unopsQuotaMB", "unopsHomeServer"]
    as_postfix = lookup(service(provider, base, "postfix"), base, probe, wanted)
    as_replicator = lookup(service(provider, base, "replicator"), base, probe, wanted)
    assert "mail" in as_postfix and "unopsHomeServer" in as_postfix
    assert "userPassword" not in as_postfix and "unopsQuotaMB" not in as_postfix
    assert "userPassword" in as_replicator and "unopsQuotaMB" in as_replicator


def test_roster_of_792_syncs_then_changes_nothing(
    synced: list[dict[str, object]], estate: Estate, base: str
) -> None:
    """After sync the directory holds exactly the roster; a second sync plans no change."""
    second = synced[1]["counts"]
    assert second == {"added": 0, "changed": 0, "disabled": 0, "deleted": 0}
    admin, _ = client.admin_connection(estate, "lab")
    held = {box.address: box for box in client.read_mailboxes(admin, base)}
    admin.unbind()
    assert len(estate.mailboxes) == 792
    for box in estate.mailboxes:
        got = held.get(box.address)
        assert got is not None, box.address
        assert (got.server, got.state, got.quota_mb, got.display_name) == (
            box.server,
            box.state.value,
            box.quota_mb,
            box.display_name,
        )


def test_new_account_goes_to_the_least_loaded_server(probe: str, estate: Estate, base: str) -> None:
    """The probe account, listed without a server, was placed on a server with fewest mailboxes."""
    admin, _ = client.admin_connection(estate, "lab")
    boxes = client.read_mailboxes(admin, base)
    admin.unbind()
    load = {host.name: 0 for host in estate.hosts_with_role("mail")}
    for box in boxes:
        if box.address != probe:
            load[box.server] += 1
    home = next(box.server for box in boxes if box.address == probe)
    assert load[home] == min(load.values())


def test_change_on_provider_reaches_every_replica(probe: str, estate: Estate, base: str) -> None:
    """A password set on the provider lets the user bind on every replica."""
    admin, _ = client.admin_connection(estate, "lab")
    client.set_password(admin, base, probe, "probe-password-2")
    admin.unbind()
    for endpoint in client.endpoints(estate, "lab", "mail"):

        def binds(endpoint: client.Endpoint = endpoint) -> bool:
            try:
                bind(endpoint, mailbox_dn(base, probe), "probe-password-2").unbind()
            except LDAPException:
                return False
            return True

        wait_until(f"the new password reaching {endpoint.name}", binds)


def test_passwd_reads_stdin_and_never_prints_it(probe: str, estate: Estate, base: str) -> None:
    """`unops -v directory passwd` takes the password on stdin; it is in no output; it binds."""
    secret = "Stdin-Only-Password-7"
    done = subprocess.run(
        [*UNOPS, "-vv", "directory", "passwd", probe],
        input=secret + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    provider = client.endpoints(estate, "lab", "directory")[0]
    bind(provider, mailbox_dn(base, probe), secret).unbind()
    with pytest.raises(LDAPException):
        bind(provider, mailbox_dn(base, probe), secret + "x")


def test_disabled_mailbox_cannot_bind(synced: object, estate: Estate, base: str) -> None:
    """A disabled mailbox with a valid password is refused at bind, on the provider."""
    box = next(b for b in estate.mailboxes if b.state.value == "disabled")
    admin, _ = client.admin_connection(estate, "lab")
    client.set_password(admin, base, box.address, "disabled-password-1")
    admin.unbind()
    provider = client.endpoints(estate, "lab", "directory")[0]
    with pytest.raises(LDAPException):
        bind(provider, mailbox_dn(base, box.address), "disabled-password-1")


def test_replicas_answer_while_the_provider_is_stopped(
    synced: object, lab: Any, estate: Estate, base: str
) -> None:
    """With slapd stopped on dir1, every replica still answers a TLS bind and search."""
    provider = client.endpoints(estate, "lab", "directory")[0]
    box = estate.mailboxes[0]
    lab.ssh("dir1", "systemctl stop slapd.service")
    try:
        with pytest.raises(LDAPException):
            service(provider, base, "postfix")
        for endpoint in client.endpoints(estate, "lab", "mail"):
            conn = service(endpoint, base, "dovecot")
            found = lookup(conn, base, box.address, ["mail", "unopsQuotaMB"])
            conn.unbind()
            assert found.get("unopsQuotaMB") == [str(box.quota_mb)], endpoint.name
    finally:
        lab.ssh("dir1", "systemctl start slapd.service")

    def answers() -> bool:
        try:
            service(provider, base, "postfix").unbind()
        except LDAPException:
            return False
        return True

    wait_until("slapd on dir1 answering again", answers)


def test_admin_cannot_write_from_another_host(synced: object, estate: Estate, base: str) -> None:
    """The admin's password, used from mail1 instead of the control machine, changes nothing."""
    box = next(b for b in estate.mailboxes if b.state.value == "active")
    ldif = f"dn: {mailbox_dn(base, box.address)}\nchangetype: modify\nreplace: unopsQuotaMB\n"
    ldif += "unopsQuotaMB: 1\n"
    mail1 = str(estate.host("mail1").lab_address)
    keys.ssh(mail1, f"printf %s {shlex.quote(ldif)} > /tmp/unops-admin-probe.ldif")
    provider = estate.fqdn(estate.hosts_with_role("directory")[0].name)
    command = (
        f"ldapmodify -x -ZZ -H ldap://{provider} -D {shlex.quote(admin_dn(base))} "
        "-y /dev/stdin -f /tmp/unops-admin-probe.ldif"
    )
    # The password travels on stdin, never on a command line.
    done = subprocess.run(
        keys.ssh_command(mail1, command),
        input=client.existing_secret("lab", "admin"),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 50, done.stderr  # insufficientAccessRights
    admin, _ = client.admin_connection(estate, "lab")
    [held] = [b for b in client.read_mailboxes(admin, base) if b.address == box.address]
    admin.unbind()
    assert held.quota_mb == box.quota_mb


def test_dry_sync_reports_and_changes_nothing(
    synced: object, estate: Estate, base: str, tmp_path: Path
) -> None:
    """`sync --dry` with one quota changed reports that change and leaves the directory alone."""
    box = estate.mailboxes[0]
    lines = ROSTER.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    assert row[header.index("address")] == box.address
    row[header.index("quota_mb")] = str(box.quota_mb + 1)
    roster = tmp_path / "changed.csv"
    roster.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n", encoding="utf-8")
    report = sync(roster, "--dry")
    assert report["dry"] is True
    assert report["changed"] == [
        {"address": box.address, "fields": {"quota_mb": [box.quota_mb, box.quota_mb + 1]}}
    ]
    # Only accounts outside the roster (the probe, while its tests run) would be disabled.
    roster_addresses = {b.address for b in estate.mailboxes}
    disabled: Any = report["disabled"]
    assert not [d for d in disabled if d["address"] in roster_addresses]
    assert report["added"] == [] and report["deleted"] == []
    admin, _ = client.admin_connection(estate, "lab")
    [held] = [b for b in client.read_mailboxes(admin, base) if b.address == box.address]
    admin.unbind()
    assert held.quota_mb == box.quota_mb


def test_status_counts_per_server_and_sees_replicas_in_sync(synced: object, estate: Estate) -> None:
    """`unops directory status --json` counts what the directory holds and sees replicas in sync."""

    def status() -> dict[str, Any]:
        done = subprocess.run(
            [*UNOPS, "directory", "status", "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        result["exit"] = done.returncode
        return result

    wait_until("every replica reaching the provider's contextCSN", lambda: status()["exit"] == 0)
    state = status()
    # What the directory holds (the roster, and the probe account while its tests run).
    admin, base = client.admin_connection(estate, "lab")
    held = client.read_mailboxes(admin, base)
    admin.unbind()
    expected: dict[str, int] = {}
    for box in held:
        expected[box.server] = expected.get(box.server, 0) + 1
    assert state["mailboxes"] == len(held) >= len(estate.mailboxes)
    assert state["per_server"] == dict(sorted(expected.items()))
    assert state["disabled"] == sum(1 for b in held if b.state == "disabled")
    assert [r["name"] for r in state["replicas"]] == ["mail1", "mail2", "mail3", "mail4"]
    assert all(r["in_sync"] for r in state["replicas"])
