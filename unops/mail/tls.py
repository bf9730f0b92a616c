"""Where a mail server's certificate comes from: the lab's CA, or files named by host data."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unops.errors import DeployError
from unops.lab import paths

log = logging.getLogger(__name__)


def certificate_files(fleet: str, fqdn: str, data: Mapping[str, Any]) -> tuple[Path, Path, Path]:
    """(certificate, key, CA certificate) on the control machine, for the server `fqdn`.

    In the lab the lab CA issues the certificate; in production the host data names the files
    (`mail_tls_cert`, `mail_tls_key`, `mail_tls_ca`), so that they can come from any source.
    """
    if fleet == "lab":
        # Imported late: the lab CA is only needed, and only present, on a lab control machine.
        ca = importlib.import_module("unops.lab.ca")
        cert, key = ca.host_certificate(fqdn, [fqdn])
        return Path(cert), Path(key), paths.CA_CERT

    # TODO: ACME issuance for production; until then the certificate files are named in host data.
    files = []
    for field in ("mail_tls_cert", "mail_tls_key", "mail_tls_ca"):
        value = data.get(field)
        if not value or not Path(str(value)).is_file():
            raise DeployError(
                f"mail server {fqdn}: host data {field!r} is {value!r}; it must name a readable "
                "file on the control machine (PEM), set in inventory/group_data/mail.py or the "
                "host's data"
            )
        files.append(Path(str(value)))
    return files[0], files[1], files[2]
