"""The lab resolver's answers, asked directly (no sockets): lab zones answered, all else refused."""

from __future__ import annotations

import json
import os

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from unops.estate import load_estate
from unops.lab.dns import LabResolver, reverse_name


@pytest.fixture(scope="module")
def estate():
    return load_estate()


@pytest.fixture
def resolver(estate, tmp_path):
    return LabResolver(estate, records_dir=tmp_path)


def ask(resolver, name, kind="A"):
    return resolver.resolve(DNSRecord.question(name, kind), None)


def values(reply):
    return [str(rr.rdata) for rr in reply.rr]


def test_answers_every_lab_host_by_fqdn_and_short_name(estate, resolver):
    """Each lab host's fqdn and bare name resolve to its lab address, authoritatively."""
    for host in estate.lab_hosts():
        for name in (host.fqdn, host.name):
            reply = ask(resolver, name)
            assert values(reply) == [str(host.address)], name
            assert reply.header.aa == 1


def test_answers_reverse_names_of_lab_addresses(estate, resolver):
    """A PTR query for a lab address names the host's fqdn, as Postfix asks."""
    host = estate.lab_hosts()[0]
    assert values(ask(resolver, reverse_name(host.address), "PTR")) == [host.fqdn + "."]


def test_every_mail_domain_has_mx_10_to_each_mail_server(estate, resolver):
    """Every mail domain (the missions' and the office zone) has MX 10 to each mail server."""
    expected = sorted(f"10 {h.name}.{estate.zone}." for h in estate.hosts_with_role("mail"))
    for domain in estate.mail_domains:
        assert sorted(values(ask(resolver, domain, "MX"))) == expected, domain


def test_mail_name_of_a_domain_points_at_its_home_server(estate, resolver):
    """mail.<domain> is the address of the server that holds most of the domain's mailboxes."""
    box = estate.mailboxes[0]
    domain = box.address.partition("@")[2]
    same = [b.server for b in estate.mailboxes if b.address.endswith("@" + domain)]
    home = max(sorted(set(same)), key=same.count)
    assert values(ask(resolver, f"mail.{domain}")) == [str(estate.host(home).lab_address)]


def test_refuses_names_outside_the_lab_without_forwarding(resolver):
    """A name in no lab zone gets REFUSED and no records: it is never looked up elsewhere."""
    assert ask(resolver, "www.example.org").header.ra == 0
    for name in ("www.example.org", "ict.example.org", "missions.example", "com"):
        reply = ask(resolver, name)
        assert reply.header.rcode == RCODE.REFUSED, name
        assert reply.rr == []


def test_unknown_name_in_a_lab_zone_is_nxdomain_with_soa(estate, resolver):
    """A missing name in the office zone is NXDOMAIN, with the zone's SOA for negative caching."""
    reply = ask(resolver, f"nosuchhost.{estate.zone}")
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]


def test_serves_published_records_and_rereads_the_folder(estate, tmp_path, resolver):
    """A record file written after start is served on the next query; removing it withdraws it."""
    domain = estate.mail_domains[0]
    assert ask(resolver, domain, "TXT").rr == []
    file = tmp_path / "spf.json"
    file.write_text(json.dumps([{"name": domain, "type": "TXT", "value": "v=spf1 mx -all"}]))
    assert values(ask(resolver, domain, "TXT")) == ['"v=spf1 mx -all"']
    file.unlink()
    assert ask(resolver, domain, "TXT").rr == []


def test_long_txt_values_are_split_into_255_byte_strings(estate, tmp_path, resolver):
    """A DKIM-sized TXT value is served whole, as several character strings of at most 255 bytes."""
    name = f"mail._domainkey.{estate.mail_domains[0]}"
    value = "v=DKIM1; k=rsa; p=" + "A" * 400
    (tmp_path / "dkim.json").write_text(json.dumps([{"name": name, "type": "TXT", "value": value}]))
    rdata = ask(resolver, name, "TXT").rr[0].rdata
    assert [len(part) for part in rdata.data] == [255, len(value) - 255]
    assert b"".join(rdata.data).decode() == value


def test_a_bad_record_file_is_left_out_and_the_others_served(estate, tmp_path, resolver):
    """A file with an unknown record type is ignored; a valid file beside it still answers."""
    domain = estate.mail_domains[1]
    (tmp_path / "bad.json").write_text(json.dumps([{"name": domain, "type": "SRV", "value": "x"}]))
    (tmp_path / "good.json").write_text(
        json.dumps([{"name": f"_dmarc.{domain}", "type": "TXT", "value": "v=DMARC1; p=reject"}])
    )
    os.utime(tmp_path)
    assert values(ask(resolver, f"_dmarc.{domain}", "TXT")) == ['"v=DMARC1; p=reject"']
    assert ask(resolver, domain, "SRV").rr == []


def test_a_published_name_outside_the_lab_zones_is_answered(tmp_path, resolver):
    """Every record in the published files is served, even one outside the estate's zones."""
    (tmp_path / "extra.json").write_text(
        json.dumps([{"name": "relay.partner.example", "type": "A", "value": "198.18.0.99"}])
    )
    assert values(ask(resolver, "relay.partner.example")) == ["198.18.0.99"]
    assert ask(resolver, "other.partner.example").header.rcode == RCODE.REFUSED
