from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.nodes import NodeProcess, nodes_on


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_node(db_kind: str, tmp_path: Path) -> Iterator[Callable[[str], NodeProcess]]:
    """Nodes on the engine of this test's parameter; PostgreSQL must answer (never skipped)."""
    with nodes_on(db_kind, tmp_path) as make:
        yield make


@pytest.fixture
def make_sqlite_node(tmp_path: Path) -> Iterator[Callable[[str], NodeProcess]]:
    with nodes_on("sqlite", tmp_path) as make:
        yield make
