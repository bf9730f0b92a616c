"""What the directory deploy writes into slapd: names, hashes, access rules, replica settings."""

from __future__ import annotations

from ipaddress import IPv4Network

import jinja2
import pytest

from unops import PROJECT_ROOT
from unops.directory import base_dn, mailbox_dn
from unops.directory.slapd import (
    TlsFiles,
    access_rules,
    admin_peers,
    apply_config_script,
    check_ssha,
    config_values,
    stable_ssha,
    syncrepl,
    tree_entries,
)
from unops.errors import DirectoryError

BASE = "dc=ict,dc=example"
PEERS = ["peername.ip=198.18.0.1%255.255.255.255"]
TLS = TlsFiles("/etc/ldap/tls/ca.crt", "/etc/ldap/tls/h.crt", "/etc/ldap/tls/h.key")


def test_base_comes_from_the_zone() -> None:
    """The office zone ict.example gives the base dc=ict,dc=example."""
    assert base_dn("ict.example") == BASE


def test_mailbox_dn_escapes_its_value() -> None:
    """Characters with meaning in a DN are escaped in a mailbox's RDN."""
    assert mailbox_dn(BASE, "a,b+c@x.example") == r"mail=a\,b\+c@x.example,ou=mailboxes," + BASE


def test_stable_ssha_is_stable_and_verifies() -> None:
    """The same secret and context give the same hash, which verifies the secret only."""
    first = stable_ssha("s3cret-value", "cn=postfix")
    assert first == stable_ssha("s3cret-value", "cn=postfix")
    assert first != stable_ssha("s3cret-value", "cn=dovecot")
    assert check_ssha("s3cret-value", first) and not check_ssha("other", first)


def test_only_the_replicator_reads_password_hashes() -> None:
    """The userPassword rule grants read to the replicator and bare auth to everyone else."""
    rule = next(r for r in access_rules(BASE, PEERS) if r.startswith("to attrs=userPassword"))
    assert 'by dn.exact="cn=replicator,ou=services,dc=ict,dc=example" read' in rule
    assert "by anonymous auth by * none" in rule
    assert "postfix" not in rule and "dovecot" not in rule


def test_disabled_mailboxes_cannot_bind() -> None:
    """A rule before the userPassword rule denies auth on disabled mailboxes."""
    rules = access_rules(BASE, PEERS)
    disabled = next(i for i, r in enumerate(rules) if "unopsAccountState=disabled" in r)
    general = next(i for i, r in enumerate(rules) if r.startswith("to attrs=userPassword"))
    assert disabled < general and "auth" not in rules[disabled]


def test_quota_is_readable_by_dovecot_not_postfix() -> None:
    """unopsQuotaMB is granted to dovecot and the replicator, not to postfix or the exporter."""
    rule = next(r for r in access_rules(BASE, PEERS) if r.startswith("to attrs=unopsQuotaMB"))
    assert "cn=dovecot" in rule and "cn=postfix" not in rule and "cn=exporter" not in rule


def test_replica_has_syncrepl_and_no_root_password() -> None:
    """A replica pulls with StartTLS verifying the CA, refers writes, and has no olcRootPW."""
    values = config_values(
        base=BASE,
        tls=TLS,
        peers=PEERS,
        provider_url="ldap://dir1.ict.example",
        replicator_password="p" * 32,
    )
    lines = values["database_lines"]
    assert "olcRootPW" not in lines and "olcUpdateRef: ldap://dir1.ict.example" in lines
    assert "starttls=critical tls_reqcert=demand" in lines and "type=refreshAndPersist" in lines
    assert values["overlay_entries"] == ""


def test_provider_has_syncprov_and_no_root_password() -> None:
    """The provider loads syncprov; its root is local root over ldapi, with no password at all."""
    values = config_values(base=BASE, tls=TLS, peers=PEERS)
    assert "olcRootPW" not in values["database_lines"]
    assert values["root_dn"] == "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"
    assert "syncprov" in values["module_lines"] and "olcSpSessionlog" in values["overlay_entries"]


def test_replica_needs_the_credential() -> None:
    """A replica without the replicator's password: a clear error."""
    with pytest.raises(DirectoryError, match="replicator's password"):
        config_values(base=BASE, tls=TLS, peers=PEERS, provider_url="ldap://dir1")


def test_admin_writes_only_from_the_control_machine() -> None:
    """The admin's write grant carries the control machine's peer clause and nothing wider."""
    [peer] = admin_peers([IPv4Network("203.0.113.0/24")])
    assert peer == "peername.ip=203.0.113.0%255.255.255.0"
    rules = access_rules(BASE, [peer])
    admin = [r for r in rules if "cn=admin," in r]
    assert admin == [f'to * by dn.exact="cn=admin,{BASE}" {peer} write by * break']


def test_admin_without_a_peer_is_refused() -> None:
    """Rules with nowhere to accept the admin from are an error, not an open grant."""
    with pytest.raises(DirectoryError, match="control machine"):
        access_rules(BASE, [])


def test_unquotable_credential_is_refused() -> None:
    """A replicator password with a quote would break olcSyncrepl: refused with the fix."""
    with pytest.raises(DirectoryError, match="delete the secret"):
        syncrepl(BASE, "ldap://dir1", 'abc"def' * 4, "/ca.crt")


def test_tree_entries_hold_hashes_not_passwords() -> None:
    """The entries the deploy uploads hold each account's hash and never its password."""
    entries = tree_entries(BASE, {"postfix": "postfix-secret-value"}, admin_password="adm-secret")
    text = "".join(e.add + (e.modify or "") for e in entries)
    assert "postfix-secret-value" not in text and "adm-secret" not in text
    names = [e.name for e in entries]
    assert names == ["base", "mailboxes", "services", "account-admin", "account-postfix"]
    assert stable_ssha("postfix-secret-value", "cn=postfix,ou=services," + BASE) in text


def _render(values: dict[str, str]) -> str:
    templates = PROJECT_ROOT / "deploys" / "templates" / "slapd"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("etc/ldap/unops/config.ldif.j2").render(**values)


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"provider_url": "ldap://dir1.ict.example", "replicator_password": "r" * 32},
    ],
    ids=["provider", "replica"],
)
def test_config_template_renders_whole_entries(values: dict[str, str]) -> None:
    """Every block of the rendered cn=config is one entry or include: no blank line splits one."""
    text = _render(config_values(base=BASE, tls=TLS, peers=PEERS, **values))
    blocks = [
        [line for line in block.splitlines() if not line.startswith("#")]
        for block in text.split("\n\n")
    ]
    blocks = [block for block in blocks if block]
    assert all(block[0].startswith(("dn: ", "include: ")) for block in blocks), blocks
    dns = [block[0] for block in blocks if block[0].startswith("dn: ")]
    assert "dn: olcDatabase={1}mdb,cn=config" in dns and "dn: cn=unops,cn=schema,cn=config" in dns


def test_config_is_checked_before_it_goes_live_and_marked_applied_last() -> None:
    """slapadd, slaptest, then the swap and restart; the applied copy is made only at the end."""
    lines = apply_config_script("/etc/ldap/unops/config.ldif", "/etc/ldap/unops/applied").split(
        "\n"
    )

    def at(fragment: str) -> int:
        return next(i for i, line in enumerate(lines) if fragment in line)

    assert lines[0] == "set -eu"
    assert at("slapadd") < at("slaptest") < at("systemctl stop") < at('mv "$new"')
    assert at('mv "$new"') < at("systemctl start") < at("cp /etc/ldap/unops/config.ldif")
    assert lines[-1] == "cp /etc/ldap/unops/config.ldif /etc/ldap/unops/applied"


def test_apply_script_quotes_its_paths() -> None:
    """A path with a space or a quote reaches the shell as one quoted word."""
    script = apply_config_script("/tmp/my config.ldif", "/tmp/it's applied")
    assert "-l '/tmp/my config.ldif'" in script
    assert "'/tmp/it'\"'\"'s applied'" in script
