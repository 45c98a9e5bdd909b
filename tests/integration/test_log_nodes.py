"""Proofs from the stored subtree roots equal proofs computed from all the leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from hotline.log.merkle import (
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    root_from_leaf_hashes,
)
from hotline.store import log as log_store
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.log import Record
from hotline.store.migrate import upgrade

SIZE = 300


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = create_engine(sqlite_url(Path(tmp_path_factory.mktemp("nodes")) / "log.db"))
    upgrade(engine)
    with engine.begin() as conn:  # appended in uneven batches, as transactions do
        n = 0
        for batch in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 69):
            log_store.append(conn, [Record("t", {"n": n + k}, 1) for k in range(batch)])
            n += batch
    assert n == SIZE
    return engine


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_stored_proofs_match_proofs_from_the_leaves(engine: Engine, data: st.DataObject
                                                    ) -> None:
    size = data.draw(st.integers(1, SIZE))
    old = data.draw(st.integers(0, size))
    index = data.draw(st.integers(0, size - 1))
    with engine.connect() as conn:
        leaves = log_store.leaves(conn, SIZE)
        tree = log_store.StoredTree(conn)
        assert tree.subtree(0, size) == root_from_leaf_hashes(leaves[:size])
        assert consistency_proof_from(tree.subtree, old, size) == \
            consistency_proof(leaves, old, size)
        assert inclusion_proof_from(tree.subtree, index, size) == \
            inclusion_proof(leaves, index, size)


def test_a_missing_node_is_reported_not_guessed(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(LookupError):
        log_store.StoredTree(conn).node(9, 5)
