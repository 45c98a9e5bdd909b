"""``hotline demo --dir`` pointing where the demo must not write: refused before
anything is created or started (exit 2), the directory left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.cli.demo_nodes import check_base
from tests.e2e.test_cli import hotline
from tests.nodes import free_port


def _listing(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*"))


def test_demo_refuses_a_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    result = hotline("demo", "--dir", str(target), "--exit", "--port", str(free_port()),
                     check=False)
    assert result.returncode == 2, result.stderr
    assert "error[bad-option]" in result.stderr
    assert "is not a directory" in result.stderr
    assert target.read_text() == "mine\n"


def test_demo_refuses_a_dir_holding_files_it_did_not_make(tmp_path: Path) -> None:
    """A node directory (or a home directory) given by mistake used to get four node
    directories, a passphrase file and console logins written into it."""
    base = tmp_path / "node"
    base.mkdir()
    (base / "config.toml").write_text('party = "US-JS"\n')
    before = _listing(base)
    result = hotline("demo", "--dir", str(base), "--exit", "--port", str(free_port()),
                     check=False)
    assert result.returncode == 2, result.stderr
    assert "holds files the demo did not make (config.toml)" in result.stderr
    assert _listing(base) == before


@pytest.mark.parametrize("names", [[], ["us", "ru", "demo-passphrase"],
                                   ["us", "ru", "ua", "pl", "demo-passphrase",
                                    "console-logins.json"]])
def test_a_new_empty_or_earlier_demo_directory_is_fine(tmp_path: Path,
                                                       names: list[str]) -> None:
    check_base(tmp_path / "new")
    for name in names:
        (tmp_path / name).mkdir()
    check_base(tmp_path)
