"""The lab CA: made once, issuing host certificates that verify against it and are reused."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from unops.errors import LabError
from unops.lab import ca, paths


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CA_CERT", tmp_path / "ca" / "ca.crt")
    monkeypatch.setattr(paths, "CA_KEY", tmp_path / "ca" / "ca.key")
    monkeypatch.setattr(paths, "CA_HOSTS_DIR", tmp_path / "ca" / "hosts")
    return tmp_path


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_is_made_once_with_a_private_key_only_root_reads():
    """ensure_ca makes the CA on first use, keeps its key 0600, and returns the same one after."""
    first = ca.ensure_ca()
    pem = first.read_bytes()
    assert ca.ensure_ca().read_bytes() == pem
    assert paths.CA_KEY.stat().st_mode & 0o777 == 0o600
    constraints = load(first).extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True


def test_host_certificate_names_fqdn_alt_names_and_lab_address_signed_by_the_ca():
    """A lab host's certificate names its fqdn, the alt names and its address; the CA signed it."""
    cert_path, key_path = ca.host_certificate("mail1.ict.example", ["mail.ad.missions.example"])
    cert, authority = load(cert_path), load(ca.ensure_ca())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "mail1.ict.example",
        "mail.ad.missions.example",
    ]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("198.18.0.11")]
    assert cert.issuer == authority.subject
    authority.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_host_certificate_is_reused_until_its_names_change():
    """Asked again for the same names, the same certificate comes back; new names mean a new one."""
    first = ca.host_certificate("dir1.ict.example", [])[0].read_bytes()
    assert ca.host_certificate("dir1.ict.example", [])[0].read_bytes() == first
    assert ca.host_certificate("dir1.ict.example", ["ldap.ict.example"])[0].read_bytes() != first


def test_rejects_a_name_that_is_not_a_dns_name_or_address():
    """A name with a space or upper case is refused with the value and what is accepted."""
    with pytest.raises(LabError, match="'Bad Name' is neither an IP address nor a lower-case DNS"):
        ca.host_certificate("mail1.ict.example", ["Bad Name"])
