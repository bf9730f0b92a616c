"""What one mail server's configuration holds, computed from the estate.

The templates under deploys/templates/{postfix,dovecot,rspamd,clamav}/ only substitute the
values computed here; every list (domains, peers, TLS policies) is built and tested in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from unops.errors import DeployError
from unops.estate import Estate
from unops.estate.models import Role

log = logging.getLogger(__name__)

# Where the deploy puts the server's certificate, key and the CA that signs its peers' (and the
# directory replica's) certificates.
TLS_DIR = "/etc/ssl/unops-mail"
TLS_CERT = f"{TLS_DIR}/mail.crt"
TLS_KEY = f"{TLS_DIR}/mail.key"
TLS_CA = f"{TLS_DIR}/ca.crt"
# Mailboxes live under this folder, one Maildir per address: /var/vmail/<domain>/<local>/Maildir.
VMAIL_DIR = "/var/vmail"
# The rspamd milter, on loopback only.
RSPAMD_MILTER = "inet:127.0.0.1:11332"
# SMTP port peers relay to, and IMAPS, which a Dovecot proxy connects to with verified TLS.
SMTP_PORT = 25
IMAPS_PORT = 993


@dataclass(frozen=True)
class MailPlan:
    """The facts one mail server's configuration is rendered from."""

    name: str
    fqdn: str
    zone: str
    domains: tuple[str, ...]
    peers: tuple[str, ...]  # the other mail servers' fully qualified names
    ldap_uri: str
    ldap_base: str
    queue_lifetime_days: int
    message_size_limit_bytes: int

    @property
    def mailboxes_dn(self) -> str:
        return f"ou=mailboxes,{self.ldap_base}"

    def bind_dn(self, account: str) -> str:
        return f"cn={account},ou=services,{self.ldap_base}"

    @property
    def domains_table(self) -> str:
        """/etc/postfix/mission_domains: one domain a line (texthash: needs no postmap)."""
        return "".join(f"{domain} OK\n" for domain in self.domains)

    @property
    def tls_policy_table(self) -> str:
        """/etc/postfix/tls_policy: relays to peers require a verified certificate for its name."""
        return "".join(f"[{peer}]:{SMTP_PORT} secure match=hostname\n" for peer in self.peers)

    @property
    def remote_transport_filter(self) -> str:
        """LDAP filter of active mailboxes homed on another server than this one."""
        return (
            "(&(objectClass=unopsMailbox)(mail=%s)(unopsAccountState=active)"
            f"(!(unopsHomeServer={self.name})))"
        )

    @property
    def remote_transport_format(self) -> str:
        # The brackets turn off MX lookups: the home server is named, not looked up.
        return f"smtp:[%s.{self.zone}]:{SMTP_PORT}"

    @property
    def local_user_filter(self) -> str:
        return (
            "(&(objectClass=unopsMailbox)(mail=%u)(unopsAccountState=active)"
            f"(unopsHomeServer={self.name}))"
        )

    @property
    def remote_user_filter(self) -> str:
        return (
            "(&(objectClass=unopsMailbox)(mail=%u)(unopsAccountState=active)"
            f"(!(unopsHomeServer={self.name})))"
        )

    @property
    def proxy_host_template(self) -> str:
        return f"%{{ldap:unopsHomeServer}}.{self.zone}"


def ldap_base(zone: str) -> str:
    """`dc=ict,dc=example` for the zone `ict.example`, as docs/directory.md sets out."""
    return ",".join(f"dc={label}" for label in zone.split("."))


def plan_for(estate: Estate, name: str) -> MailPlan:
    """The plan of the mail server `name`; an error if it is not a mail server of the estate."""
    servers = sorted(h.name for h in estate.hosts_with_role(Role.MAIL))
    if name not in servers:
        raise DeployError(
            f"host {name!r} is not a mail server in {estate.root / 'hosts.toml'}; "
            f"mail servers: {', '.join(servers)}"
        )
    fqdn = estate.fqdn(name)
    return MailPlan(
        name=name,
        fqdn=fqdn,
        zone=estate.zone,
        domains=tuple(estate.mail_domains),
        peers=tuple(estate.fqdn(peer) for peer in servers if peer != name),
        # The directory replica on this server: lookups survive the directory host being down.
        ldap_uri=f"ldap://{fqdn}",
        ldap_base=ldap_base(estate.zone),
        queue_lifetime_days=estate.mail.queue_lifetime_days,
        message_size_limit_bytes=estate.mail.message_size_limit_mb * 1024 * 1024,
    )
