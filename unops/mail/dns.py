"""The DNS records a mission domain publishes for its mail: SPF, DKIM, DMARC, MTA-STS, TLS-RPT.

`unops mail dns DOMAIN` prints them for the people who run the domain's zone; in the lab the mail
deploy writes them where the lab's resolver serves them, so that the servers check each other's
mail as receivers on the internet would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from unops.errors import UnopsError
from unops.estate import Estate
from unops.estate.models import Role
from unops.mail import dkim

log = logging.getLogger(__name__)

# Time to live of the published records, in seconds: an hour lets a mistake be undone quickly.
RECORD_TTL = 3600
# How long senders cache the MTA-STS policy, in seconds (a week, RFC 8461 suggests weeks).
MTA_STS_MAX_AGE = 604800
# Name of the lab resolver's record file written by the mail deploy.
LAB_RECORDS_FILE = "mail.json"


# The estate whose records were last written to each file, in this process.
_published: dict[Path, Estate] = {}


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str
    ttl: int = RECORD_TTL


def mail_servers(estate: Estate) -> list[str]:
    """The fully qualified names of the mail servers, in name order."""
    return [estate.fqdn(h.name) for h in sorted(estate.hosts_with_role(Role.MAIL), key=_name)]


def _name(host: object) -> str:
    return str(getattr(host, "name", ""))


def check_domain(estate: Estate, domain: str) -> str:
    """The domain itself if the mail servers accept it, or an error naming what is accepted."""
    domain = domain.strip().lower().rstrip(".")
    if domain not in estate.mail_domains:
        sample = ", ".join(estate.mission_mail_domains[:3])
        raise UnopsError(
            f"{domain!r} is not a mail domain of the estate: give the office zone "
            f"{estate.zone} or one of the {len(estate.mission_mail_domains)} mission domains "
            f"in {estate.root / 'missions.csv'}, such as {sample}"
        )
    return domain


def spf_value(estate: Estate) -> str:
    # By name, not by address: the same record holds for the lab and production, and four `a:`
    # lookups stay well under SPF's limit of ten.
    servers = " ".join(f"a:{fqdn}" for fqdn in mail_servers(estate))
    return f"v=spf1 {servers} -all"


def mta_sts_policy(estate: Estate) -> str:
    """The policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461)."""
    lines = ["version: STSv1", "mode: enforce"]
    lines += [f"mx: {fqdn}" for fqdn in mail_servers(estate)]
    lines.append(f"max_age: {MTA_STS_MAX_AGE}")
    return "\r\n".join(lines) + "\r\n"


def records(estate: Estate, fleet: str, domain: str) -> list[DnsRecord]:
    """Every record `domain` publishes for its mail, in a stable order."""
    domain = check_domain(estate, domain)
    reports = estate.site.office.service_desk
    report_domain = reports.partition("@")[2]
    # The policy id changes whenever the policy does, which tells senders to fetch it again.
    policy_id = hashlib.sha256(mta_sts_policy(estate).encode()).hexdigest()[:16]
    result = [
        DnsRecord(domain, "TXT", spf_value(estate)),
        DnsRecord(
            f"{dkim.SELECTOR}._domainkey.{domain}", "TXT", dkim.public_key_record(fleet, domain)
        ),
        DnsRecord(
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:{reports}",
        ),
        DnsRecord(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={policy_id}"),
        DnsRecord(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:{reports}"),
    ]
    if report_domain != domain:
        # RFC 7489 section 7.1: the report domain says it accepts this domain's reports.
        result.append(DnsRecord(f"{domain}._report._dmarc.{report_domain}", "TXT", "v=DMARC1"))
    return result


def all_records(estate: Estate, fleet: str) -> list[DnsRecord]:
    """The records of every mail domain: the missions' and the office zone."""
    return [record for domain in estate.mail_domains for record in records(estate, fleet, domain)]


def write_lab_records(estate: Estate, records_dir: Path) -> tuple[Path, bool]:
    """Write every domain's records where the lab resolver reads them; True if the file changed."""
    path = records_dir / LAB_RECORDS_FILE
    # The deploy plans each mail server in one process: the records are the same for all four.
    if _published.get(path) == estate:
        return path, False
    body = json.dumps([asdict(r) for r in all_records(estate, "lab")], indent=1) + "\n"
    _published[path] = estate
    if path.exists() and path.read_text(encoding="utf-8") == body:
        return path, False
    records_dir.mkdir(parents=True, exist_ok=True)
    # Write beside and rename, so that the resolver never reads half a file.
    temp = path.with_suffix(".tmp")
    temp.write_text(body, encoding="utf-8")
    os.replace(temp, path)
    log.info("published %s mail DNS records in %s", body.count('"name"'), path)
    return path, True
