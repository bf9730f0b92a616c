"""The package registries lab hosts may reach, found at run time on the control machine.

The Debian mirror is whatever the control machine's own apt sources name; the Python package
index is pip's default. Neither name is written in the repository: both are read here, resolved
with the control machine's resolver, and given to each host as /etc/hosts lines, because the
lab's own resolver refuses every name outside the lab.
"""

from __future__ import annotations

import importlib
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

APT_SOURCES = [Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")]

_ONE_LINE = re.compile(r"^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)")
_DEB822 = re.compile(r"^\s*URIs:\s*(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Registry:
    """A registry's host name and the IPv4 addresses it resolved to on the control machine."""

    name: str
    addresses: tuple[str, ...]


def apt_source_uris(sources: list[Path] | None = None) -> list[str]:
    """Every http(s) URI in the apt sources (one-line and deb822 formats), in file order."""
    files: list[Path] = []
    for path in sources or APT_SOURCES:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources"))
        elif path.is_file():
            files.append(path)
    uris: list[str] = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("#"):
                continue
            one = _ONE_LINE.match(line)
            if one:
                uris.append(one.group(1))
            many = _DEB822.match(line)
            if many:
                uris += many.group(1).split()
    return [uri for uri in uris if urlparse(uri).scheme in ("http", "https")]


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The first Debian mirror URI of the control machine (for debootstrap)."""
    for uri in apt_source_uris(sources):
        if "security" not in urlparse(uri).path:
            return uri.rstrip("/")
    from unops.errors import LabError

    raise LabError(
        "no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/; the lab builds "
        "its base root from the mirror this machine uses"
    )


def _pypi_names() -> list[str]:
    # pip's own default index, read from pip so that the name is not repeated here.
    try:
        index = importlib.import_module("pip._internal.models.index")
    except ImportError:
        return []
    pypi = index.PyPI
    return [str(pypi.netloc), str(pypi.file_storage_domain)]


def registry_names(sources: list[Path] | None = None) -> list[str]:
    """The host names of the Debian sources and of the Python package index, without repeats."""
    names = [urlparse(uri).hostname or "" for uri in apt_source_uris(sources)] + _pypi_names()
    return list(dict.fromkeys(name for name in names if name))


def resolve(names: list[str]) -> list[Registry]:
    """Resolve each name on the control machine; a name that does not resolve is left out."""
    found: list[Registry] = []
    for name in names:
        try:
            infos = socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            log.warning(
                "registry %s does not resolve here (%s); lab hosts will not reach it", name, exc
            )
            continue
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        found.append(Registry(name, addresses))
    return found
