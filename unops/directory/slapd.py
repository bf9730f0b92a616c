"""What the directory deploy writes into slapd's configuration, computed here so it can be tested.

The deploy renders `deploys/templates/slapd/etc/ldap/unops/config.ldif.j2` with these values and
loads it into a fresh `/etc/ldap/slapd.d` only when its digest differs from the one applied.
Nothing here talks to a host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from unops.directory import (
    MAILBOX_CLASSES,
    admin_dn,
    mailbox_dn,
    mailboxes_dn,
    service_dn,
    services_dn,
)
from unops.errors import DirectoryError

# The identity of root on the host over ldapi:/// (SASL EXTERNAL): the deploy manages with it.
LOCAL_ROOT = "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"

# Attributes of a mailbox that routing needs (Postfix, the exporter) and that quotas add (Dovecot).
ROUTING_ATTRIBUTES = ("entry", "objectClass", "mail", "unopsHomeServer", "unopsAccountState")
QUOTA_ATTRIBUTES = ("unopsQuotaMB",)

# Equality indexes: the lookups of Postfix and Dovecot, and entryCSN/entryUUID for syncrepl.
INDEXES = (
    "objectClass eq",
    "mail eq",
    "unopsHomeServer eq",
    "unopsAccountState eq",
    "unopsMission eq",
    "entryCSN eq",
    "entryUUID eq",
)

# Characters a syncrepl credential may hold: it sits between double quotes in olcSyncrepl.
_SAFE_CREDENTIAL = re.compile(r"^[A-Za-z0-9._~-]{16,128}$")


def stable_ssha(password: str, context: str) -> str:
    """An {SSHA} hash of `password` whose salt is derived from the password and `context`.

    A fresh random salt on each run would change the generated configuration every time and
    make the deploy report a change on every run; the secrets are 32 random characters, so a
    salt derived from them is as unpredictable and is not shared between accounts.
    """
    salt = hmac.new(password.encode(), context.encode(), hashlib.sha256).digest()[:8]
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 (SSHA is SHA-1 by spec)
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def check_ssha(password: str, hashed: str) -> bool:
    """Whether an {SSHA} value (the scheme in any case, as slapd takes it) hashes `password`."""
    if not hashed.upper().startswith("{SSHA}"):
        return False
    raw = base64.b64decode(hashed[len("{SSHA}") :])
    digest, salt = raw[:20], raw[20:]
    candidate = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324
    return hmac.compare_digest(digest, candidate)


def _by(base: str, services: Sequence[str], level: str) -> str:
    return " ".join(f'by dn.exact="{service_dn(base, name)}" {level}' for name in services)


def admin_peers(networks: Sequence[IPv4Network | IPv4Address]) -> list[str]:
    """slapd `peername.ip` clauses for the places the admin may write from."""
    peers = []
    for net in networks:
        net = IPv4Network(net)
        peers.append(f"peername.ip={net.network_address}%{net.netmask}")
    return peers


def access_rules(base: str, peers: Sequence[str]) -> list[str]:
    """olcAccess of the mailbox database, first match wins (docs/directory.md, bind accounts).

    The admin writes, but only from `peers` (the control machine); the replicator reads
    everything (it copies the tree), each other service only what its lookups need; users may
    only authenticate; nobody else reads anything.
    """
    if not peers:
        raise DirectoryError("no address to accept the admin from; expected the control machine's")
    boxes = mailboxes_dn(base)
    replicator = _by(base, ["replicator"], "read")
    admin = " ".join(f'by dn.exact="{admin_dn(base)}" {peer} write' for peer in peers)
    return [
        f"to * by dn.exact={LOCAL_ROOT} manage by * break",
        f"to * {admin} by * break",
        # A disabled mailbox cannot bind anywhere, whatever a client's own filter says.
        f'to dn.subtree="{boxes}" filter=(unopsAccountState=disabled) attrs=userPassword '
        f"{replicator} by * none",
        f"to attrs=userPassword {replicator} by anonymous auth by * none",
        f"to attrs={','.join(QUOTA_ATTRIBUTES)} {replicator} "
        f"{_by(base, ['dovecot'], 'read')} by * none",
        f'to dn.subtree="{boxes}" attrs={",".join(ROUTING_ATTRIBUTES)} {replicator} '
        f"{_by(base, ['postfix', 'dovecot', 'exporter'], 'read')} by * none",
        f'to dn.base="{base}" attrs=entry,objectClass,contextCSN {replicator} '
        f"{_by(base, ['postfix', 'dovecot', 'exporter'], 'read')} by * none",
        f"to * {replicator} by * none",
    ]


def limits(base: str) -> list[str]:
    """olcLimits: the admin, the replicator and the exporter read every mailbox, beyond 500."""
    return [f'dn.exact="{admin_dn(base)}" size=unlimited time=unlimited'] + [
        f'dn.exact="{service_dn(base, name)}" size=unlimited time=unlimited'
        for name in ("replicator", "exporter")
    ]


def syncrepl(base: str, provider_url: str, credential: str, ca_file: str) -> str:
    """olcSyncrepl of a replica: refreshAndPersist from the provider, StartTLS verifying the CA."""
    if not _SAFE_CREDENTIAL.match(credential):
        raise DirectoryError(
            "the replicator's password (secret ldap/replicator) holds characters that cannot "
            "stand in olcSyncrepl; expected 16 to 128 of A-Z a-z 0-9 . _ ~ -; delete the secret "
            "to have a new one generated"
        )
    return (
        f"rid=001 provider={provider_url} starttls=critical tls_reqcert=demand "
        f'tls_cacert="{ca_file}" bindmethod=simple '
        f'binddn="{service_dn(base, "replicator")}" credentials="{credential}" '
        f'searchbase="{base}" type=refreshAndPersist retry="5 10 30 +" '
        "timeout=5 network-timeout=5 keepalive=240:10:30"
    )


@dataclass(frozen=True)
class Entry:
    """An entry the deploy keeps present: the LDIF to add it, the LDIF to bring it up to date."""

    name: str
    add: str
    modify: str | None = None


def tree_entries(base: str, passwords: dict[str, str], admin_password: str) -> list[Entry]:
    """The base, the two organizational units, the admin and a bind account per service."""
    top = base.split(",")[0].split("=", 1)[1]
    entries = [
        Entry(
            "base",
            f"dn: {base}\nobjectClass: dcObject\nobjectClass: organization\ndc: {top}\no: {top}\n",
        ),
        Entry(
            "mailboxes",
            f"dn: {mailboxes_dn(base)}\nobjectClass: organizationalUnit\nou: mailboxes\n",
        ),
        Entry(
            "services", f"dn: {services_dn(base)}\nobjectClass: organizationalUnit\nou: services\n"
        ),
    ]
    accounts = [(admin_dn(base), "admin", admin_password, "writes mailboxes")]
    accounts += [
        (service_dn(base, name), name, password, f"bind account of {name}")
        for name, password in passwords.items()
    ]
    for dn, name, password, description in accounts:
        hashed = stable_ssha(password, dn)
        entries.append(
            Entry(
                f"account-{name}",
                f"dn: {dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
                f"cn: {name}\ndescription: {description}\nuserPassword: {hashed}\n",
                f"dn: {dn}\nchangetype: modify\nreplace: userPassword\nuserPassword: {hashed}\n",
            )
        )
    return entries


def office_mailbox_entry(
    base: str, address: str, server: str, password: str, description: str, quota_mb: int
) -> Entry:
    """A mailbox of the office itself, homed on `server`: active, with no mission.

    Having no mission keeps it out of `unops directory sync`, which manages mission mailboxes
    only; the deploy that needs the account keeps it present and up to date instead.
    """
    dn = mailbox_dn(base, address)
    values = {
        "cn": description,
        "sn": description,
        "unopsHomeServer": server,
        "unopsAccountState": "active",
        "unopsQuotaMB": str(quota_mb),
        "userPassword": stable_ssha(password, dn),
    }
    for name, value in values.items():
        # RFC 2849 SAFE-STRING: printable ASCII, not starting with a space, ':' or '<'.
        if not (value.isascii() and value.isprintable()) or value[:1] in (" ", ":", "<"):
            raise DirectoryError(
                f"{name} {value!r} of {address} is not a plain LDIF value; expected printable "
                "ASCII not starting with a space, ':' or '<'"
            )
    classes = "".join(f"objectClass: {name}\n" for name in MAILBOX_CLASSES)
    add = f"dn: {dn}\n{classes}mail: {address}\n" + "".join(
        f"{name}: {value}\n" for name, value in values.items()
    )
    modify = f"dn: {dn}\nchangetype: modify\n" + "-\n".join(
        f"replace: {name}\n{name}: {value}\n" for name, value in values.items()
    )
    return Entry(f"mailbox-{address}", add, modify)


def _lines(name: str, values: Sequence[str], ordered: bool = False) -> list[str]:
    return [f"{name}: {{{i}}}{v}" if ordered else f"{name}: {v}" for i, v in enumerate(values)]


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA, the host's certificate and its key are on the host."""

    ca: str
    cert: str
    key: str


def config_values(
    *,
    base: str,
    tls: TlsFiles,
    peers: Sequence[str],
    provider_url: str | None = None,
    replicator_password: str | None = None,
) -> dict[str, str]:
    """The values of config.ldif.j2: the provider, or a replica given the provider's URL.

    The root DN is root on the host over ldapi (no password: the deploy manages slapd through
    it); the admin is an entry whose writes the access rules accept from `peers` only. A
    replica is given the provider's URL and the replicator's password; nobody writes to it but
    syncrepl.
    """
    provider = provider_url is None
    if not provider and replicator_password is None:
        raise DirectoryError("a replica needs the provider's URL and the replicator's password")

    database = _lines("olcDbIndex", INDEXES)
    database += _lines("olcAccess", access_rules(base, peers), ordered=True)
    database += _lines("olcLimits", limits(base), ordered=True)
    overlays = ""
    if provider:
        modules = ["back_mdb", "syncprov"]
        # The session log lets a replica that was away catch up with a delta, not a full refresh.
        overlays = (
            "\ndn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config\n"
            "objectClass: olcOverlayConfig\nobjectClass: olcSyncProvConfig\n"
            "olcOverlay: {0}syncprov\nolcSpCheckpoint: 100 10\nolcSpSessionlog: 1000\n"
        )
    else:
        assert provider_url is not None and replicator_password is not None
        modules = ["back_mdb"]
        database.append(f"olcSyncrepl: {syncrepl(base, provider_url, replicator_password, tls.ca)}")
        # Writes sent to a replica are referred to the provider.
        database.append(f"olcUpdateRef: {provider_url}")
    return {
        "base": base,
        "root_dn": LOCAL_ROOT,
        "tls_ca": tls.ca,
        "tls_cert": tls.cert,
        "tls_key": tls.key,
        "module_lines": "\n".join(_lines("olcModuleLoad", modules, ordered=True)),
        "database_lines": "\n".join(database),
        "overlay_entries": overlays,
    }


def apply_config_script(ldif: str, applied: str) -> str:
    """Load `ldif` into a fresh slapd.d, check it, swap it in and restart; roll back on failure."""
    q = shlex.quote
    return "\n".join(
        [
            "set -eu",
            "new=/etc/ldap/slapd.d.unops-new old=/etc/ldap/slapd.d.unops-old",
            'rm -rf "$new" && install -d -o openldap -g openldap -m 0750 "$new"',
            "install -d -o openldap -g openldap -m 0700 /var/lib/ldap",
            # slaptest checks it can write the pid file; the init script makes the folder later.
            "install -d -o openldap -g openldap -m 0755 /var/run/slapd",
            f'slapadd -q -n0 -F "$new" -l {q(ldif)}',
            'chown -R openldap:openldap "$new"',
            # -u: a new host has no database yet, and slaptest would fail to open it.
            'runuser -u openldap -- slaptest -u -F "$new"',
            "systemctl stop slapd.service || true",
            'rm -rf "$old"',
            'if [ -d /etc/ldap/slapd.d ]; then mv /etc/ldap/slapd.d "$old"; fi',
            'mv "$new" /etc/ldap/slapd.d',
            "if ! systemctl start slapd.service; then",
            "  rm -rf /etc/ldap/slapd.d.unops-failed && mv /etc/ldap/slapd.d "
            "/etc/ldap/slapd.d.unops-failed",
            '  if [ -d "$old" ]; then mv "$old" /etc/ldap/slapd.d && '
            "systemctl start slapd.service; fi",
            "  echo 'slapd did not start with the new configuration; the previous one is back "
            "and the new one is in /etc/ldap/slapd.d.unops-failed' >&2",
            "  exit 1",
            "fi",
            f"cp {q(ldif)} {q(applied)}",
        ]
    )


def wait_for_slapd(ldapi: str) -> str:
    """A shell loop that waits until slapd answers root on its local socket, 10 s at most."""
    # slapd's init script returns once the daemon has forked, before it listens on its socket.
    return (
        "for i in $(seq 50); do ldapwhoami -Q -Y EXTERNAL -H "
        f"{shlex.quote(ldapi)} >/dev/null 2>&1 && exit 0; sleep 0.2; done; "
        "echo 'slapd does not answer on ldapi:/// after 10 s' >&2; exit 1"
    )
