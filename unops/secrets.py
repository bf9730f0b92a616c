"""Secrets generated on first use and kept outside the repository, readable by root only.

A secret is named by its purpose (`ldap/bind/postfix`, `restic/mail1`); it is generated once,
kept in SECRETS_DIR/<fleet>/<name> with mode 0600, and read back on every later run, so that
deploys stay idempotent. Values are never logged: callers get them, logs get only the name.
"""

from __future__ import annotations

import logging
import os
import re
import secrets as _random
from collections.abc import Callable
from pathlib import Path

from unops.errors import SecretsError
from unops.lab.paths import SECRETS_DIR

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")


def secrets_dir(fleet: str) -> Path:
    """The folder of one fleet's secrets ('lab' or 'production'), made 0700 if missing."""
    if not re.fullmatch(r"[a-z0-9-]+", fleet):
        raise SecretsError(f"fleet name {fleet!r} must be lower-case letters, digits and '-'")
    path = SECRETS_DIR / fleet
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def secret_path(fleet: str, name: str) -> Path:
    if not _NAME.match(name) or ".." in name:
        raise SecretsError(
            f"secret name {name!r} must be lower-case path parts of letters, digits, '.', '_' "
            "and '-', such as 'ldap/bind/postfix'"
        )
    return secrets_dir(fleet) / name


def password(fleet: str, name: str, length: int = 32) -> str:
    """A random password, generated on first use and the same on every later call."""
    return get_or_create(fleet, name, lambda: _random.token_urlsafe(length)[:length])


def get_or_create(fleet: str, name: str, make: Callable[[], str]) -> str:
    """Read the secret `name`, or make it with `make()` and keep it (0600) if it is missing."""
    path = secret_path(fleet, name)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretsError(
                f"secret {path} has mode {mode:04o}; it must be readable by its owner only "
                f"(chmod 600 {path})"
            )
        return path.read_text(encoding="utf-8").rstrip("\n")
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create with 0600 from the start: never a moment in which another user could read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    log.info("generated secret %s", name)
    return value
