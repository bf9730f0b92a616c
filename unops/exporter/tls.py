"""The TLS context every probe uses: verification on, against the lab CA or the system store."""

from __future__ import annotations

import ssl


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that verifies the peer's chain and name; TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
