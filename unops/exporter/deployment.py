"""What deploys/monitoring.py puts on the hosts, computed here where it can be tested.

The Prometheus configuration is generated from the estate as JSON, which is valid YAML, so no
template has to loop; the SNMPv3 and SSH credentials are generated once into the secrets.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from unops.directory.slapd import Entry, office_mailbox_entry
from unops.errors import ExporterError
from unops.exporter.config import (
    RECORDS_KEY_SECRET,
    SNMP_AUTH_SECRET,
    SNMP_PRIV_SECRET,
    SNMP_USER,
    ExporterConfig,
    probe_secret,
)
from unops.secrets import get_or_create, password

# Where the exporter listens on the monitoring host, and Prometheus and Alertmanager beside it.
EXPORTER_PORT = 9470
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
# What the exporter imports on the monitoring host (not the deploy tooling of the full CLI).
EXPORTER_REQUIREMENTS = (
    "prometheus-client",
    "paramiko",
    "ldap3",
    "pysnmp",
    "click",
    "cryptography",
)


def requirements() -> list[str]:
    """The exporter's dependencies pinned to the versions the control machine runs and tests."""
    return [f"{name}=={metadata.version(name)}" for name in EXPORTER_REQUIREMENTS]


def _new_ssh_key() -> str:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii").rstrip("\n")


def records_key(fleet: str) -> tuple[str, str]:
    """The exporter's SSH key for the forced command: (private OpenSSH PEM, public key line)."""
    pem = get_or_create(fleet, RECORDS_KEY_SECRET, _new_ssh_key)
    key = serialization.load_ssh_private_key(pem.encode("ascii"), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return pem + "\n", public.decode("ascii")


def authorized_key_line(public_key: str, sources: list[str]) -> str:
    """unops-monitor's authorized_keys line: only from the exporter, only the forced command."""
    source = ",".join(sources)
    return (
        f'restrict,from="{source}",command="/usr/local/lib/unops/monitor-read" '
        f"{public_key} unops-exporter"
    )


def snmp_credentials(fleet: str) -> tuple[str, str, str]:
    """(user, auth passphrase, priv passphrase) of the exporter's SNMPv3 user."""
    # net-snmp wants passphrases of 8 characters at least; 32 random ones are far above.
    return SNMP_USER, password(fleet, SNMP_AUTH_SECRET), password(fleet, SNMP_PRIV_SECRET)


def snmp_create_user_line(user: str, auth: str, priv: str) -> str:
    """The line snmpd turns into a localized usmUser at its next start (SHA-256, AES-128)."""
    # net-snmp's configuration reader splits on blanks and knows no shell quoting: only plain
    # tokens are safe (unops.secrets makes letters, digits, '-' and '_').
    for what, value in (("user", user), ("auth passphrase", auth), ("priv passphrase", priv)):
        if not re.fullmatch(r"[A-Za-z0-9_-]{8,}", value):
            raise ExporterError(
                f"SNMPv3 {what} must be 8 or more letters, digits, '-' or '_' for snmpd's "
                "createUser; regenerate the secret with unops.secrets"
            )
    return f"createUser {user} SHA-256 {auth} AES {priv}"


def snmp_user_marker(user: str, auth: str, priv: str) -> str:
    """A digest that says which credentials the agent was given, without holding them."""
    return hashlib.sha256(f"{user}\0{auth}\0{priv}".encode()).hexdigest()


# In the lab the access points are containers without radios: snmpd serves these client counts
# (one per radio) in the model's clients column, so that the exporter's reading is exercised.
LAB_SIMULATED_CLIENTS = (7, 3)
# Quota of a probe mailbox: each message is removed as soon as it is found.
PROBE_QUOTA_MB = 64


def probe_entries(config: ExporterConfig) -> list[Entry]:
    """The directory entries of the probe mailboxes, one homed on each mail server.

    Their passwords are made here on first use (unops.secrets) and copied to the exporter.
    """
    base = config.base_dn
    return [
        office_mailbox_entry(
            base,
            server.probe_user,
            server.target,
            password(config.fleet, probe_secret(server.target)),
            f"Monitoring probe of {server.target}",
            PROBE_QUOTA_MB,
        )
        for server in config.mail_servers
    ]


def prometheus_config(
    *,
    fleet: str,
    address: str,
    scrape_interval: str,
    scrape_timeout: str,
    exporter_tls: bool,
    ca_file: str | None,
    server_name: str,
) -> str:
    """prometheus.yml for the monitoring host at `address` (JSON, which is valid YAML)."""
    exporter_job: dict[str, object] = {
        "job_name": "unops-exporter",
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_timeout,
        "static_configs": [{"targets": [f"{address}:{EXPORTER_PORT}"]}],
    }
    if exporter_tls:
        tls: dict[str, str] = {"server_name": server_name}
        if ca_file:
            tls["ca_file"] = ca_file
        exporter_job["scheme"] = "https"
        exporter_job["tls_config"] = tls
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_timeout,
            "evaluation_interval": scrape_interval,
            "external_labels": {"fleet": fleet},
        },
        "rule_files": ["/etc/prometheus/rules/*.yml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"{address}:{ALERTMANAGER_PORT}"]}]}]
        },
        "scrape_configs": [
            exporter_job,
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"{address}:{PROMETHEUS_PORT}"]}],
            },
            {
                "job_name": "alertmanager",
                "static_configs": [{"targets": [f"{address}:{ALERTMANAGER_PORT}"]}],
            },
        ],
    }
    return json.dumps(config, indent=2) + "\n"
