"""Tree rules (protocol/tree.py) for all inputs, how a checkpoint applies them, and how
evidence pairs are named (store/evidence.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import HotlineError
from hotline.log.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from hotline.protocol.checkpoint import (
    BAD_CHECKPOINT,
    CHECKPOINT_DOMAIN,
    INVALID_TREE_HEAD,
    make_checkpoint,
    make_cosignature,
    signed_by,
    verify_checkpoint,
)
from hotline.protocol.keys import PartyKeys, b64e
from hotline.protocol.signing import sign_object
from hotline.protocol.tree import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    max_consistency_proof,
    max_inclusion_proof,
    tree_head_problem,
)
from hotline.store.evidence import pair_digest

KEYS = PartyKeys.generate()
OTHER = PartyKeys.generate()
LEAVES = [leaf_hash(b"%d" % i) for i in range(300)]
HASHES = st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE)


def _signed(size: int, root: bytes, keys: PartyKeys = KEYS) -> dict[str, object]:
    return sign_object(CHECKPOINT_DOMAIN, {"v": 1, "origin": "US-JS", "size": size,
                                           "root": b64e(root), "at": 1,
                                           "kid": keys.public.key_id}, keys)


@given(size=st.integers(-2**60, 2**60), root=HASHES)
def test_a_head_is_possible_exactly_when_size_in_range_and_empty_tree_has_its_root(
        size: int, root: bytes) -> None:
    expected_ok = 0 <= size <= MAX_TREE_SIZE and (size > 0 or root == EMPTY_ROOT)
    assert (tree_head_problem(size, root) is None) == expected_ok


def test_bools_and_short_roots_are_no_tree_heads() -> None:
    assert tree_head_problem(True, LEAVES[0]) is not None
    assert tree_head_problem(1, b"\x00" * 31) is not None
    assert tree_head_problem(0, EMPTY_ROOT) is None


def test_the_proof_bounds_are_tight_for_every_tree_up_to_130_leaves() -> None:
    for n in range(1, 130):
        inclusion = max(len(inclusion_proof(LEAVES, i, n)) for i in range(n))
        consistency = max(len(consistency_proof(LEAVES, m, n)) for m in range(n + 1))
        assert inclusion == max_inclusion_proof(n)
        assert consistency <= max_consistency_proof(n)
    assert max(len(consistency_proof(LEAVES, m, 4)) for m in range(5)) \
        == max_consistency_proof(4)


@settings(max_examples=200)
@given(data=st.data())
def test_a_proof_longer_than_its_bound_never_verifies(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 299))
    root = root_from_leaf_hashes(LEAVES[:n])
    extra = data.draw(st.lists(HASHES, min_size=1, max_size=3))
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(LEAVES, i, n)
    assert verify_inclusion(LEAVES[i], i, n, proof, root)
    assert not verify_inclusion(LEAVES[i], i, n, proof + extra, root)
    assert not verify_inclusion(LEAVES[i], n, n, proof, root)  # index not below size
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(LEAVES, m, n)
    old = root_from_leaf_hashes(LEAVES[:m])
    assert verify_consistency(m, n, old, root, proof)
    padded = proof + extra * (max_consistency_proof(n) + 1)
    assert not verify_consistency(m, n, old, root, padded)


@given(root=HASHES.filter(lambda r: r != EMPTY_ROOT))
def test_an_impossible_empty_tree_is_refused_after_its_signature(root: bytes) -> None:
    with pytest.raises(HotlineError) as exc:
        verify_checkpoint(_signed(0, root), KEYS.public, "US-JS")
    assert exc.value.error_id == INVALID_TREE_HEAD  # signed: evidence against US-JS
    forged = {**_signed(0, root, OTHER), "kid": KEYS.public.key_id}
    with pytest.raises(HotlineError) as exc:
        verify_checkpoint(forged, KEYS.public, "US-JS")
    assert exc.value.error_id == BAD_CHECKPOINT  # not signed by it: proves nothing


def test_sizes_beyond_the_maximum_are_invalid_heads_and_make_checkpoint_refuses_them(
        ) -> None:
    with pytest.raises(HotlineError) as exc:
        verify_checkpoint(_signed(MAX_TREE_SIZE + 1, LEAVES[0]), KEYS.public, "US-JS")
    assert exc.value.error_id == INVALID_TREE_HEAD
    with pytest.raises(HotlineError):
        make_checkpoint("US-JS", 0, LEAVES[0], 1, KEYS)
    good = verify_checkpoint(make_checkpoint("US-JS", 0, EMPTY_ROOT, 1, KEYS), KEYS.public,
                             "US-JS")
    assert make_cosignature(good, "RU-GS", 2, OTHER)["size"] == 0


def test_signed_by_tells_the_true_signer_and_never_raises() -> None:
    cp = _signed(5, LEAVES[5])
    assert signed_by(cp, KEYS.public)
    assert not signed_by(cp, OTHER.public)
    assert not signed_by({**cp, "size": 6}, KEYS.public)
    assert not signed_by({"v": 1}, KEYS.public)
    assert not signed_by("nonsense", KEYS.public)


@given(a=st.binary(max_size=64), b=st.one_of(st.none(), st.binary(max_size=64)))
def test_a_pair_is_named_the_same_in_either_order(a: bytes, b: bytes | None) -> None:
    assert pair_digest(a, b) == pair_digest(b or b"", a)
    assert len(pair_digest(a, b)) == 64


@given(pairs=st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)),
                      min_size=2, max_size=20))
def test_distinct_pairs_get_distinct_names(pairs: list[tuple[bytes, bytes]]) -> None:
    unordered = {frozenset([a, b]) if a != b else frozenset([a]) for a, b in pairs}
    names = {pair_digest(a, b) for a, b in pairs}
    assert len(names) == len(unordered)
