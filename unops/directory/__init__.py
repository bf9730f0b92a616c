"""The LDAP directory: where mailboxes live, who may read what, and how a roster reaches it.

The layout is the contract of docs/directory.md: the base comes from the office zone
(`ict.example` gives `dc=ict,dc=example`), mailboxes are `mail=<address>,ou=mailboxes,<base>`,
service bind accounts are `cn=<service>,ou=services,<base>`, and their passwords are the secrets
`ldap/<account>`.
"""

from __future__ import annotations

from ldap3.utils.dn import escape_rdn

from unops.errors import DirectoryError

# The bind accounts of the consuming services, in the order the deploy creates them.
SERVICE_ACCOUNTS = ("replicator", "postfix", "dovecot", "exporter")
ADMIN_ACCOUNT = "admin"

MAILBOXES_OU = "mailboxes"
SERVICES_OU = "services"

# The object classes and attributes of a mailbox entry (docs/directory.md).
MAILBOX_CLASSES = ("inetOrgPerson", "unopsMailbox")
MAILBOX_ATTRIBUTES = (
    "mail",
    "cn",
    "sn",
    "unopsHomeServer",
    "unopsQuotaMB",
    "unopsAccountState",
    "unopsMission",
)

__all__ = [
    "ADMIN_ACCOUNT",
    "MAILBOX_ATTRIBUTES",
    "MAILBOX_CLASSES",
    "SERVICE_ACCOUNTS",
    "admin_dn",
    "base_dn",
    "mailbox_dn",
    "mailboxes_dn",
    "secret_name",
    "service_dn",
    "services_dn",
]


def base_dn(zone: str) -> str:
    """The directory base for an office zone: `ict.example` -> `dc=ict,dc=example`."""
    labels = zone.strip(".").split(".")
    if not zone or not all(labels):
        raise DirectoryError(
            f"zone {zone!r} is not a domain name; expected one such as ict.example"
        )
    return ",".join(f"dc={escape_rdn(label)}" for label in labels)


def mailboxes_dn(base: str) -> str:
    return f"ou={MAILBOXES_OU},{base}"


def services_dn(base: str) -> str:
    return f"ou={SERVICES_OU},{base}"


def mailbox_dn(base: str, address: str) -> str:
    """The DN of a mailbox; the address is escaped, whatever characters it holds."""
    return f"mail={escape_rdn(address)},{mailboxes_dn(base)}"


def service_dn(base: str, service: str) -> str:
    return f"cn={escape_rdn(service)},{services_dn(base)}"


def admin_dn(base: str) -> str:
    return f"cn={ADMIN_ACCOUNT},{base}"


def secret_name(account: str) -> str:
    """The name of a bind account's password in the secrets directory: `ldap/postfix`."""
    return f"ldap/{account}"
