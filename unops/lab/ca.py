"""The lab's certificate authority: made once, it signs every lab service's certificate.

Lab clients verify TLS against CA_CERT, exactly as production clients verify against the
public roots; nothing in the lab turns verification off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from unops.errors import LabError
from unops.lab import paths

log = logging.getLogger(__name__)

# The CA outlives any lab session; host certificates are short enough to show expiry alerts
# working on a long-lived lab, long enough never to expire during one.
CA_DAYS = 3650
HOST_DAYS = 365
_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_ca() -> Path:
    """The CA certificate (CA_CERT, with its key in CA_KEY), made on first use."""
    if paths.CA_CERT.exists() and paths.CA_KEY.exists():
        return paths.CA_CERT
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unops lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "unops lab CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(paths.CA_KEY, key)
    paths.CA_CERT.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("created the lab CA %s", paths.CA_CERT)
    return paths.CA_CERT


def _load_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ensure_ca()
    cert = x509.load_pem_x509_certificate(paths.CA_CERT.read_bytes())
    key = serialization.load_pem_private_key(paths.CA_KEY.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise LabError(
            f"{paths.CA_KEY} is not an EC key; remove {paths.CA_CERT.parent} to remake it"
        )
    return cert, key


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _NAME.match(value):
        raise LabError(
            f"certificate name {value!r} is neither an IP address nor a lower-case DNS name "
            "such as 'mail1.ict.example'"
        )
    return x509.DNSName(value)


def _lab_address(fqdn: str) -> list[str]:
    # A lab host's certificate also names its address, for clients that connect by address.
    from unops.estate import load_estate

    return [str(h.address) for h in load_estate().lab_hosts() if h.fqdn == fqdn]


def host_certificate(fqdn: str, alt_names: list[str]) -> tuple[Path, Path]:
    """(cert, key) PEM paths for `fqdn`, issued by the lab CA once and then reused.

    The certificate names `fqdn`, every alt name (DNS names or addresses) and, for a lab host,
    its address; one issued earlier for other names, by another CA, or expiring within 30
    days, is issued again.
    """
    names = list(dict.fromkeys([fqdn, *alt_names, *_lab_address(fqdn)]))
    wanted = [_san(name) for name in names]
    folder = paths.CA_HOSTS_DIR
    cert_path, key_path = folder / f"{fqdn}.crt", folder / f"{fqdn}.key"
    ca_cert, ca_key = _load_ca()
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if (
            current.issuer == ca_cert.subject
            and set(sans) == set(wanted)
            and current.not_valid_after_utc > _now() + dt.timedelta(days=30)
        ):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=HOST_DAYS))
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("issued lab certificate %s for %s", cert_path, ", ".join(names))
    return cert_path, key_path
