"""DKIM keys, one per mission domain, generated once into the secrets directory.

A key is kept as `dkim/<domain>` (PEM, mode 0600) in the fleet's secrets; the public half is
what `unops mail dns` prints for the `<selector>._domainkey.<domain>` TXT record.
"""

from __future__ import annotations

import base64
import io
import logging
import tarfile
from collections.abc import Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from unops.errors import SecretsError
from unops.secrets import get_or_create

log = logging.getLogger(__name__)

# Selector of the keys in use; a rotation publishes a new selector beside the old one first.
SELECTOR = "unops1"
# RSA 2048 bits: what RFC 8301 requires verifiers to accept; 1024 is no longer acceptable.
KEY_BITS = 2048


def _new_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii")


def secret_name(domain: str) -> str:
    return f"dkim/{domain}"


def private_key_pem(fleet: str, domain: str) -> str:
    """The domain's private key (PEM), generated on first use and the same ever after."""
    # get_or_create gives a new value as made and a kept one without its final newline.
    return get_or_create(fleet, secret_name(domain), _new_key).rstrip("\n") + "\n"


def public_key_record(fleet: str, domain: str) -> str:
    """The value of the DKIM TXT record: `v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>`."""
    pem = private_key_pem(fleet, domain).encode("ascii")
    try:
        # Our own key, made by `_new_key`: skipping RSA's consistency check (about 75 ms a key)
        # keeps the records of ~190 domains from costing seconds on every deploy.
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
    except ValueError as exc:
        raise SecretsError(
            f"the DKIM key of {domain} (secret {secret_name(domain)!r} of fleet {fleet!r}) is "
            f"not a PEM private key: {exc}; remove it to have a new one generated"
        ) from None
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def key_file_name(domain: str) -> str:
    """The key's file name on a mail server, as rspamd's `path` setting finds it."""
    return f"{domain}.{SELECTOR}.key"


def key_bundle(fleet: str, domains: Iterable[str]) -> bytes:
    """Every domain's private key in one tar archive, the same bytes for the same keys.

    One file to compare and copy instead of one per domain: a deploy with nothing to change
    checks one checksum per server, not ~190.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for domain in sorted(domains):
            data = private_key_pem(fleet, domain).encode("ascii")
            info = tarfile.TarInfo(key_file_name(domain))
            info.size = len(data)
            info.mode = 0o600
            info.mtime = 0  # fixed, so that the archive only changes when a key does
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
