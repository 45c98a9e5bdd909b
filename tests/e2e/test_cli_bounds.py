"""The CLI's integer options are bounded before anything is sent or stored: out of
bounds is a usage error (exit 2) naming the option, as every other usage error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(("args", "option"), [
    (["inbox", "--after", str(2**63)], "--after"),
    (["inbox", "--after", "-1"], "--after"),
    (["inbox", "--limit", "1001"], "--limit"),
    (["calls", "--limit", "0"], "--limit"),
    (["demo", "--port", "65533"], "--port"),
    (["demo", "--port", "0"], "--port"),
])
def test_out_of_bounds_is_a_usage_error(tmp_path: Path, args: list[str], option: str) -> None:
    if args[0] != "demo":
        args = [*args, "--dir", str(tmp_path)]
    run = subprocess.run([sys.executable, "-m", "hotline", *args], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert option in run.stderr


def test_the_largest_cursor_passes_the_option_check(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "hotline", "inbox", "--after", str(2**63 - 1),
                          "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1  # past the option: no node in this directory
    assert "error[no-node]" in run.stderr
