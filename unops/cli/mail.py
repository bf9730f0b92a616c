"""`unops mail`: what the mission e-mail service needs from outside, such as its DNS records."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from unops.estate import load_estate
from unops.mail import dns


@click.group("mail")
def command() -> None:
    """Mission e-mail: Postfix, Dovecot and rspamd on every mail server."""


@command.command("dns")
@click.argument("domain")
@click.option(
    "--fleet",
    type=click.Choice(["production", "lab"]),
    default="production",
    show_default=True,
    help="Whose DKIM key to print: each fleet has its own keys in its secrets directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
def dns_command(domain: str, fleet: str, as_json: bool) -> None:
    """Print the SPF, DKIM, DMARC, MTA-STS and TLS-RPT records DOMAIN publishes.

    DOMAIN is a mission's mail domain from inventory/estate/missions.csv. The DKIM key is
    generated into the secrets directory on first use, as the mail deploy would. The MTA-STS
    policy file to serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt follows the records.
    """
    estate = load_estate()
    records = dns.records(estate, fleet, domain)
    if as_json:
        policy = dns.mta_sts_policy(estate)
        click.echo(
            json.dumps(
                {"records": [asdict(r) for r in records], "mta_sts_policy": policy}, indent=2
            )
        )
        return
    for record in records:
        # Zone-file form; a value longer than 255 bytes is split into quoted strings (RFC 7208 3.3).
        chunks = " ".join(
            f'"{record.value[i : i + 255]}"' for i in range(0, len(record.value), 255)
        )
        click.echo(f"{record.name}. {record.ttl} IN {record.type} {chunks}")
    click.echo(f"\n; https://mta-sts.{domain}/.well-known/mta-sts.txt")
    for line in dns.mta_sts_policy(estate).splitlines():
        click.echo(f"; {line}")
