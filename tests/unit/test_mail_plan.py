"""The mail plan and the templates it renders: routing, relay refusal, TLS, LDAP filters."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from unops import PROJECT_ROOT
from unops.errors import DeployError
from unops.estate import load_estate
from unops.mail import plan, tls

TEMPLATES = PROJECT_ROOT / "deploys" / "templates"


@pytest.fixture(scope="module")
def mail2() -> plan.MailPlan:
    return plan.plan_for(load_estate(), "mail2")


def render(relative: str, mail_plan: plan.MailPlan, **data: object) -> str:
    source = (TEMPLATES / relative).read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {"plan": mail_plan, "tls_cert": plan.TLS_CERT, "tls_key": plan.TLS_KEY}
    values |= {"tls_ca": plan.TLS_CA, **data}
    return env.from_string(source).render(**values)


def settings(text: str) -> dict[str, str]:
    """main.cf-style `name = value` lines, continuation lines joined."""
    result: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and last:
            result[last] += " " + line.strip()
            continue
        name, _, value = line.partition("=")
        last = name.strip()
        result[last] = value.strip()
    return result


def test_plan_lists_every_mission_domain_and_the_other_servers(mail2: plan.MailPlan) -> None:
    """A server accepts every mission domain and knows the three other servers as peers."""
    estate = load_estate()
    assert list(mail2.domains) == estate.mail_domains
    assert mail2.peers == ("mail1.ict.example", "mail3.ict.example", "mail4.ict.example")
    assert mail2.ldap_base == "dc=ict,dc=example"
    assert mail2.bind_dn("postfix") == "cn=postfix,ou=services,dc=ict,dc=example"


def test_rejects_a_host_that_is_not_a_mail_server() -> None:
    """Planning mail for a host without the mail role names the host and the mail servers."""
    with pytest.raises(DeployError, match=r"'dir1' is not a mail server.*mail1, mail2"):
        plan.plan_for(load_estate(), "dir1")


def test_remote_transport_excludes_mailboxes_homed_here(mail2: plan.MailPlan) -> None:
    """Only mailboxes homed elsewhere get a relay transport, to their home server by name."""
    assert "(!(unopsHomeServer=mail2))" in mail2.remote_transport_filter
    assert "(unopsAccountState=active)" in mail2.remote_transport_filter
    assert mail2.remote_transport_format == "smtp:[%s.ict.example]:25"


def test_tls_policy_requires_verified_certificates_of_peers(mail2: plan.MailPlan) -> None:
    """Relays to each peer require TLS with a certificate that matches the peer's name."""
    lines = mail2.tls_policy_table.splitlines()
    assert lines == [f"[{peer}]:25 secure match=hostname" for peer in mail2.peers]


def test_main_cf_refuses_unauthenticated_relay_permanently(mail2: plan.MailPlan) -> None:
    """Port 25 relays only for authenticated clients and refuses others with a 5xx code."""
    main = settings(render("postfix/etc/postfix/main.cf.j2", mail2, milter="inet:x:1"))
    assert (
        main["smtpd_relay_restrictions"] == "permit_sasl_authenticated, reject_unauth_destination"
    )
    assert main["relay_domains_reject_code"].startswith("5")
    assert main["allow_percent_hack"] == "no"
    assert main["swap_bangpath"] == "no"
    assert main["allow_untrusted_routing"] == "no"
    assert main["smtpd_sasl_auth_enable"] == "no"


def test_main_cf_fails_closed_when_the_milter_is_down(mail2: plan.MailPlan) -> None:
    """A milter that cannot answer defers mail instead of passing it unscanned."""
    main = settings(render("postfix/etc/postfix/main.cf.j2", mail2, milter="inet:127.0.0.1:1"))
    assert main["milter_default_action"] == "tempfail"
    assert main["smtpd_milters"] == "inet:127.0.0.1:1"


def test_main_cf_keeps_mail_for_the_estates_queue_lifetime(mail2: plan.MailPlan) -> None:
    """Mail for a peer that is down waits the days mail.toml gives before it bounces."""
    main = settings(render("postfix/etc/postfix/main.cf.j2", mail2, milter="inet:x:1"))
    days = load_estate().mail.queue_lifetime_days
    assert main["maximal_queue_lifetime"] == f"{days}d"
    assert main["bounce_queue_lifetime"] == f"{days}d"
    assert main["smtpd_tls_mandatory_protocols"] == ">=TLSv1.2"


def test_submission_requires_tls_and_a_matching_sender(mail2: plan.MailPlan) -> None:
    """Ports 587 and 465 require encryption, authentication and a sender the login owns."""
    master = render("postfix/etc/postfix/master.cf.j2", mail2)
    services = master.split("\n", 3)[3].split("\nsubmissions ")
    submission = services[0].split("submission inet", 1)[1].split("\npickup", 1)[0]
    submissions = services[1].split("\npickup", 1)[0]
    for block in (submission, submissions):
        assert "smtpd_tls_security_level=encrypt" in block
        assert "smtpd_sender_restrictions=reject_sender_login_mismatch" in block
        assert "smtpd_client_restrictions=permit_sasl_authenticated,reject" in block
    assert "smtpd_tls_wrappermode=yes" in submissions
    assert "smtpd_tls_auth_only=yes" in submission


def test_ldap_maps_bind_over_verified_starttls(mail2: plan.MailPlan) -> None:
    """Every Postfix LDAP table binds as cn=postfix over StartTLS that verifies the replica."""
    for table in ("mailboxes", "transport", "senders"):
        text = settings(render(f"postfix/etc/postfix/ldap/{table}.cf.j2", mail2, bind_pw="pw"))
        assert text["start_tls"] == "yes"
        assert text["tls_require_cert"] == "yes"
        assert text["bind_dn"] == "cn=postfix,ou=services,dc=ict,dc=example"
        assert text["server_host"] == "ldap://mail2.ict.example"


def test_dovecot_proxies_mailboxes_homed_elsewhere_over_verified_tls(
    mail2: plan.MailPlan,
) -> None:
    """A login for a mailbox homed elsewhere is proxied to its home server's IMAPS port."""
    proxy = settings(
        render(
            "dovecot/etc/dovecot/unops-ldap-proxy.conf.ext.j2", mail2, bind_pw="pw", imaps_port=993
        )
    )
    assert "(!(unopsHomeServer=mail2))" in proxy["pass_filter"]
    assert "=proxy=y" in proxy["pass_attrs"]
    assert "=host=%{ldap:unopsHomeServer}.ict.example" in proxy["pass_attrs"]
    assert "=port=993" in proxy["pass_attrs"] and "=ssl=yes" in proxy["pass_attrs"]
    local = settings(
        render("dovecot/etc/dovecot/unops-ldap-local.conf.ext.j2", mail2, bind_pw="pw")
    )
    assert "(unopsHomeServer=mail2)" in local["user_filter"]
    assert local["auth_bind"] == "yes"


def test_dovecot_requires_tls_before_login(mail2: plan.MailPlan) -> None:
    """IMAP refuses plaintext logins until TLS is up and offers TLS 1.2 or later only."""
    conf = render(
        "dovecot/etc/dovecot/dovecot.conf.j2", mail2, vmail_uid=5000, vmail_dir="/var/vmail"
    )
    values = settings("\n".join(line for line in conf.splitlines() if "{" not in line))
    assert values["ssl"] == "required"
    assert values["disable_plaintext_auth"] == "yes"
    assert values["ssl_min_protocol"] == "TLSv1.2"
    assert "passdb {\n  driver = pam" not in conf


def test_templates_only_substitute() -> None:
    """No mail template holds a loop or a condition: lists are computed in Python."""
    for service in ("postfix", "dovecot", "rspamd", "clamav"):
        for path in Path(TEMPLATES / service).rglob("*.j2"):
            text = path.read_text(encoding="utf-8")
            assert "{%" not in text, f"{path} has template logic"


def test_production_certificate_must_be_named_in_host_data(tmp_path: Path) -> None:
    """In production a missing certificate file stops the deploy, naming the host data field."""
    with pytest.raises(DeployError, match=r"mail1\.ict\.example: host data 'mail_tls_cert'"):
        tls.certificate_files("production", "mail1.ict.example", {})
    files = {}
    for field in ("mail_tls_cert", "mail_tls_key", "mail_tls_ca"):
        files[field] = tmp_path / f"{field}.pem"
        files[field].write_text("PEM\n")
    assert tls.certificate_files("production", "mail1.ict.example", files) == (
        files["mail_tls_cert"],
        files["mail_tls_key"],
        files["mail_tls_ca"],
    )
