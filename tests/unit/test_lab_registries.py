"""Finding the registries from the control machine's apt sources, in both formats."""

from __future__ import annotations

import pytest

from unops.errors import LabError
from unops.lab import registries


def test_reads_one_line_and_deb822_sources(tmp_path):
    """URIs come from `deb` lines (with options) and deb822 `URIs:` fields, never from comments."""
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.invalid/debian bookworm main\n"
    )
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text(
        "Types: deb\nURIs: http://two.invalid/debian http://three.invalid/debian\n"
        "Suites: bookworm\n\nTypes: deb\nURIs: http://two.invalid/debian-security\n"
    )
    (folder / "ignored.txt").write_text("deb http://never.invalid/debian bookworm main\n")
    uris = registries.apt_source_uris([tmp_path / "sources.list", folder])
    assert uris == [
        "http://one.invalid/debian",
        "http://two.invalid/debian",
        "http://three.invalid/debian",
        "http://two.invalid/debian-security",
    ]


def test_mirror_is_the_first_source_that_is_not_security(tmp_path):
    """debootstrap gets the first mirror, never the security archive."""
    sources = tmp_path / "sources.list"
    sources.write_text(
        "deb http://sec.invalid/debian-security bookworm-security main\n"
        "deb http://main.invalid/debian/ bookworm main\n"
    )
    assert registries.debian_mirror([sources]) == "http://main.invalid/debian"


def test_no_mirror_is_a_clear_error(tmp_path):
    """Without any Debian source the lab says where it looked."""
    empty = tmp_path / "sources.list"
    empty.write_text("# nothing\n")
    with pytest.raises(LabError, match=r"no Debian mirror in /etc/apt/sources\.list"):
        registries.debian_mirror([empty])


def test_names_are_unique_and_include_the_python_index(tmp_path, monkeypatch):
    """Each registry host name appears once; pip's default index is added to apt's hosts."""
    sources = tmp_path / "sources.list"
    sources.write_text(
        "deb http://a.invalid/debian bookworm main\ndeb http://a.invalid/debian-security x main\n"
    )
    monkeypatch.setattr(registries, "_pypi_names", lambda: ["pypi.invalid", "files.invalid"])
    assert registries.registry_names([sources]) == ["a.invalid", "pypi.invalid", "files.invalid"]
