"""The compose check's reading of the machine's apt sources (deploy/compose_check/standins.py): the mirror its
stand-in images are bootstrapped from, in either format apt takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.compose_check.standins import apt_mirror


def write(apt: Path, name: str, text: str) -> None:
    path = apt / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_deb822_sources_give_the_first_mirror_of_the_suite(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sources.list.d/debian.sources",
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\n# a comment inside the stanza\nURIs: http://mirror.example/debian http://other.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n",
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_one_line_sources_with_options(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sources.list",
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://mirror.example/debian bookworm main\n",
    )
    (tmp_path / "sources.list.d").mkdir()
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_no_source_for_the_suite_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "sources.list.d/old.list", "deb http://mirror.example/debian bullseye main\n")
    with pytest.raises(RuntimeError, match="bookworm"):
        apt_mirror(tmp_path)
