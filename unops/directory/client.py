"""The directory through ldap3: connections over verified TLS, reading and writing mailboxes.

Every function takes its `Connection` as a parameter, so that unit tests give it one made with
ldap3's MOCK_SYNC strategy and lab tests a real one. Values that reach a DN are escaped with
escape_rdn (in unops.directory) and values that reach a filter with escape_filter_chars.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldap3 import (
    AUTO_BIND_TLS_BEFORE_BIND,
    BASE,
    LEVEL,
    MODIFY_REPLACE,
    NONE,
    SYNC,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.hashed import HASHED_SALTED_SHA, hashed

from unops.directory import (
    MAILBOX_CLASSES,
    admin_dn,
    base_dn,
    mailbox_dn,
    mailboxes_dn,
    secret_name,
    service_dn,
)
from unops.directory.plan import Change, Mailbox, Plan
from unops.errors import DirectoryError
from unops.estate import Estate
from unops.lab import paths
from unops.secrets import secret_path

log = logging.getLogger(__name__)

# The directory's attribute for each field of a Mailbox (display_name is cn and sn).
ATTRIBUTE_OF = {
    "address": "mail",
    "display_name": "cn",
    "mission": "unopsMission",
    "quota_mb": "unopsQuotaMB",
    "state": "unopsAccountState",
    "server": "unopsHomeServer",
}
_READ_ATTRIBUTES = sorted(set(ATTRIBUTE_OF.values()))
# Entries per page when reading every mailbox: below slapd's default size limit of 500.
PAGE_SIZE = 400
LDAP_PORT = 389
TIMEOUT_S = 10


@dataclass(frozen=True)
class Endpoint:
    """A directory server: its host name, the name its certificate carries, where to connect."""

    name: str
    fqdn: str
    address: str
    port: int = LDAP_PORT

    @property
    def url(self) -> str:
        return f"ldap://{self.address}:{self.port}"


def endpoints(estate: Estate, fleet: str, role: str) -> list[Endpoint]:
    """The provider (`role` 'directory') or the replicas ('mail') of a fleet, by host name.

    The lab's names do not resolve on the control machine, so lab endpoints are addresses; the
    certificate is still checked against the host's fully qualified name.
    """
    found = []
    for host in estate.hosts_with_role(role):
        if fleet == "lab":
            if host.lab_address is None:
                continue
            address = str(host.lab_address)
        else:
            address = estate.fqdn(host.name)
        found.append(Endpoint(host.name, estate.fqdn(host.name), address))
    if not found:
        raise DirectoryError(f"the {fleet} fleet has no host with role {role!r} in hosts.toml")
    return sorted(found, key=lambda endpoint: endpoint.name)


def ca_file(fleet: str) -> Path:
    """The CA that signs the directory's certificates: the lab CA, or production's own."""
    path = paths.CA_CERT if fleet == "lab" else paths.SECRETS_DIR / "production" / "tls" / "ca.crt"
    if not path.is_file():
        raise DirectoryError(
            f"the {fleet} CA certificate {path} is missing; TLS cannot be verified"
        )
    return path


def existing_secret(fleet: str, account: str) -> str:
    """A bind password the directory deploy generated; never made here (it would not match)."""
    path = secret_path(fleet, secret_name(account))
    if not path.is_file():
        raise DirectoryError(
            f"the password of {account!r} ({path}) is missing: run the directory deploy on the "
            f"{fleet} fleet first (`unops deploy directory --inventory {fleet}`)"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise DirectoryError(f"secret {path} has mode {mode:04o}; chmod 600 {path}")
    return path.read_text(encoding="utf-8").rstrip("\n")


def connect(endpoint: Endpoint, user: str, password: str, ca: Path) -> Connection:
    """A connection bound as `user` after StartTLS, the server's certificate verified by `ca`."""
    tls = Tls(ca_certs_file=str(ca), validate=ssl.CERT_REQUIRED, valid_names=[endpoint.fqdn])
    server = Server(
        endpoint.address, port=endpoint.port, tls=tls, get_info=NONE, connect_timeout=TIMEOUT_S
    )
    try:
        conn = Connection(
            server,
            user=user,
            password=password,
            client_strategy=SYNC,
            auto_bind=AUTO_BIND_TLS_BEFORE_BIND,
            receive_timeout=TIMEOUT_S,
            raise_exceptions=False,
        )
    except LDAPException as exc:
        raise DirectoryError(
            f"could not bind to {endpoint.name} ({endpoint.url}, StartTLS) as {user}: {exc}"
        ) from exc
    log.info("bound to %s as %s over StartTLS", endpoint.name, user)
    return conn


def admin_connection(estate: Estate, fleet: str) -> tuple[Connection, str]:
    """(connection, base) to the provider as the directory's admin, for sync and passwd."""
    base = base_dn(estate.zone)
    provider = endpoints(estate, fleet, "directory")[0]
    conn = connect(provider, admin_dn(base), existing_secret(fleet, "admin"), ca_file(fleet))
    return conn, base


def service_connection(endpoint: Endpoint, estate: Estate, fleet: str, account: str) -> Connection:
    base = base_dn(estate.zone)
    password = existing_secret(fleet, account)
    return connect(endpoint, service_dn(base, account), password, ca_file(fleet))


def _check(conn: Connection, action: str) -> None:
    if conn.result["result"] != 0:
        raise DirectoryError(
            f"the directory refused to {action}: {conn.result['description']} "
            f"{conn.result.get('message') or ''}".rstrip()
        )


def _first(attributes: dict[str, Any], name: str) -> str:
    value = attributes.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = value.decode()
    return "" if value is None else str(value)


def _pages(conn: Connection, base: str, query: str, attributes: list[str]) -> Iterator[Any]:
    entries = conn.extend.standard.paged_search(
        base,
        query,
        search_scope=LEVEL,
        attributes=attributes,
        paged_size=PAGE_SIZE,
        generator=True,
    )
    for entry in entries:
        if entry.get("type") == "searchResEntry":
            yield entry
    _check(conn, f"list the entries under {base}")


# The mailboxes a roster manages: those of a mission. The office's own accounts (the monitoring
# probes, made by the monitoring deploy) carry no mission, so sync never disables or prunes them.
MISSION_MAILBOXES = "(&(objectClass=unopsMailbox)(unopsMission=*))"


def read_mailboxes(conn: Connection, base: str) -> list[Mailbox]:
    """Every mission mailbox under ou=mailboxes, in address order."""
    found = []
    for entry in _pages(conn, mailboxes_dn(base), MISSION_MAILBOXES, _READ_ATTRIBUTES):
        attrs = entry["attributes"]
        quota = _first(attrs, "unopsQuotaMB")
        found.append(
            Mailbox(
                address=_first(attrs, "mail"),
                display_name=_first(attrs, "cn"),
                mission=_first(attrs, "unopsMission"),
                quota_mb=int(quota) if quota.isdigit() else 0,
                state=_first(attrs, "unopsAccountState"),
                server=_first(attrs, "unopsHomeServer"),
            )
        )
    return sorted(found, key=lambda box: box.address)


def _add_attributes(box: Mailbox) -> dict[str, str]:
    return {
        "mail": box.address,
        "cn": box.display_name,
        "sn": box.display_name,
        "unopsMission": box.mission,
        "unopsQuotaMB": str(box.quota_mb),
        "unopsAccountState": box.state,
        "unopsHomeServer": box.server,
    }


def _modification(change: Change) -> dict[str, list[tuple[str, list[str]]]]:
    mods: dict[str, list[tuple[str, list[str]]]] = {}
    for name, (_, new) in change.fields.items():
        mods[ATTRIBUTE_OF[name]] = [(MODIFY_REPLACE, [str(new)])]
        if name == "display_name":
            mods["sn"] = [(MODIFY_REPLACE, [str(new)])]
    return mods


def apply_plan(
    conn: Connection, base: str, plan: Plan, progress: Callable[[int], None] | None = None
) -> None:
    """Make the plan's changes, one entry at a time; stops at the first refusal.

    LDAP has no transaction across entries: a refusal leaves the entries before it done, and a
    second sync (which plans again from what is there) finishes the work.
    """
    step = progress or (lambda _: None)
    for box in plan.adds:
        conn.add(mailbox_dn(base, box.address), list(MAILBOX_CLASSES), _add_attributes(box))
        _check(conn, f"add {box.address}")
        log.info("added %s on %s", box.address, box.server)
        step(1)
    for change in [*plan.changes, *plan.disables]:
        conn.modify(mailbox_dn(base, change.address), _modification(change))
        _check(conn, f"change {change.address}")
        log.info("changed %s: %s", change.address, ", ".join(change.fields))
        step(1)
    for address in plan.deletes:
        conn.delete(mailbox_dn(base, address))
        _check(conn, f"delete {address}")
        log.info("deleted %s", address)
        step(1)


def find_mailbox(conn: Connection, base: str, address: str) -> str:
    """The DN of the mailbox `address`; a DirectoryError names the address when there is none."""
    query = f"(&(objectClass=unopsMailbox)(mail={escape_filter_chars(address)}))"
    conn.search(mailboxes_dn(base), query, search_scope=LEVEL, attributes=["mail"])
    _check(conn, f"look up {address}")
    if not conn.entries:
        raise DirectoryError(
            f"no mailbox {address!r} in the directory; add it to the roster and run "
            "`unops directory sync` first"
        )
    return str(conn.entries[0].entry_dn)


def set_password(conn: Connection, base: str, address: str, password: str) -> None:
    """Set the password of a mailbox, stored as a salted SHA-1 ({SSHA}) hash; never logged."""
    if not password:
        raise DirectoryError("the new password is empty; expected at least one character")
    dn = find_mailbox(conn, base, address)
    value = hashed(HASHED_SALTED_SHA, password)
    conn.modify(dn, {"userPassword": [(MODIFY_REPLACE, [value])]})
    _check(conn, f"set the password of {address}")
    log.info("set the password of %s", address)


def context_csn(conn: Connection, base: str) -> list[str]:
    """The base entry's contextCSN values: where this server's copy of the tree stands."""
    conn.search(base, "(objectClass=*)", search_scope=BASE, attributes=["contextCSN"])
    _check(conn, f"read the contextCSN of {base}")
    if not conn.response:
        return []
    value = conn.response[0].get("attributes", {}).get("contextCSN", [])
    values = value if isinstance(value, list) else [value]
    return sorted(str(v) for v in values)
