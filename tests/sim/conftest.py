from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Simulated nodes keep their SQLite files in memory-backed storage where there is one:
#: the durability of an fsync is not what these tests are about, and the virtual clock
#: would wait for every one of them.
SHM = Path("/dev/shm")


@pytest.fixture
def sim_root(tmp_path: Path) -> Iterator[Path]:
    if SHM.is_dir():
        with tempfile.TemporaryDirectory(dir=SHM, prefix="hotline-sim-") as name:
            yield Path(name)
    else:
        yield tmp_path
