"""Merkle tree: roots, compact ranges, inclusion and consistency proofs.

The module under test computes roots level by level and proofs by walking down ranges;
the references here follow the RFC 6962 / RFC 9162 recursive definitions word for word,
so an agreement is between two independent readings of the RFC. Known vectors pin the
exact bytes (hand-built trees and the RFC's own worked examples).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.log.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

N = 300  # leaves available to the property tests


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _leaf(data: bytes) -> bytes:
    return _h(b"\x00" + data)


def _node(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


LEAVES = [_leaf(i.to_bytes(4, "big")) for i in range(N)]


# -- the RFC's recursive definitions, as references -----------------------------------

def _k(n: int) -> int:
    """Largest power of two strictly below n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, over leaf hashes."""
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return d[0]
    k = _k(n)
    return _node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


ROOTS = [ref_mth(LEAVES[:n]) for n in range(N + 1)]


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def index_and_size(draw: st.DrawFn, max_size: int = N) -> tuple[int, int]:
    size = draw(st.integers(1, max_size))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn, max_size: int = N) -> tuple[int, int]:
    """0 < old < new: the sizes with a non-trivial consistency proof."""
    new = draw(st.integers(2, max_size))
    return draw(st.integers(1, new - 1)), new


# ======================================================================= hashing

def test_hashes_follow_the_definitions() -> None:
    assert EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert leaf_hash(b"abc") == _h(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _h(b"\x01" + b"L" * 32 + b"R" * 32)
    # Domain separation: a leaf whose data is two hashes is not the node over them.
    assert leaf_hash(b"L" * 32 + b"R" * 32) != node_hash(b"L" * 32, b"R" * 32)


def test_small_trees_built_by_hand() -> None:
    a, b, c, d, e, f, g = (_leaf(x) for x in
                           (b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41",
                            b"\x50"))
    leaves = [a, b, c, d, e, f, g]
    expected = {
        0: _h(b""),
        1: a,
        2: _node(a, b),
        3: _node(_node(a, b), c),
        4: _node(_node(a, b), _node(c, d)),
        5: _node(_node(_node(a, b), _node(c, d)), e),
        7: _node(_node(_node(a, b), _node(c, d)), _node(_node(e, f), g)),
    }
    for size, root in expected.items():
        assert root_from_leaf_hashes(leaves[:size]) == root, size
        compact = CompactRange()
        compact.extend(leaves[:size])
        assert compact.root() == root, size


# The test vectors of the Certificate Transparency reference implementation: leaves of
# growing length, roots of the first n leaves for n = 0..8. They agree with the
# hand-built trees above and pin the exact bytes against an outside source.
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_reference_vectors(size: int) -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES[:size]]
    assert root_from_leaf_hashes(hashes).hex() == CT_ROOTS[size]


def test_root_matches_the_recursive_definition_for_every_size() -> None:
    for size in range(N + 1):
        assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size], size


def test_root_refuses_a_hash_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        root_from_leaf_hashes([*LEAVES[:3], b"short"])


# ======================================================================= compact range

def test_compact_range_equals_the_batch_root_at_every_size() -> None:
    compact = CompactRange()
    assert compact.size == 0
    assert compact.root() == EMPTY_ROOT
    for size in range(1, N + 1):
        compact.append(LEAVES[size - 1])
        assert compact.size == size
        assert compact.root() == ROOTS[size], size
        state = compact.to_state()
        assert len(state) == bin(size).count("1")  # O(log n): one hash per set bit
        restored = CompactRange.from_state(size, state)
        assert restored.root() == ROOTS[size]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 5000), split=st.integers(0, 5000))
def test_compact_range_resumed_from_state_continues_the_same_tree(size: int,
                                                                    split: int) -> None:
    hashes = [_leaf(i.to_bytes(4, "big")) for i in range(size)]
    split = min(split, size)
    first = CompactRange()
    first.extend(hashes[:split])
    resumed = CompactRange.from_state(first.size, first.to_state())
    resumed.extend(hashes[split:])
    assert resumed.size == size
    assert resumed.root() == root_from_leaf_hashes(hashes)


def test_compact_range_state_must_fit_the_size() -> None:
    compact = CompactRange()
    compact.extend(LEAVES[:5])  # 0b101: two subtree roots
    state = compact.to_state()
    with pytest.raises(ValueError, match="has 2 subtree hashes, got 1"):
        CompactRange.from_state(5, state[:1])
    with pytest.raises(ValueError, match="has 1 subtree hashes, got 2"):
        CompactRange.from_state(4, state)
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange.from_state(5, [state[0], state[1][:31]])
    with pytest.raises(ValueError, match="non-negative"):
        CompactRange.from_state(-1, [])
    with pytest.raises(ValueError, match="non-negative"):
        CompactRange.from_state(True, state[:1])
    with pytest.raises(ValueError, match="32 bytes"):
        compact.append(b"\x00" * 33)
    assert compact.size == 5  # a refused append changes nothing


# ======================================================================= inclusion

def test_rfc_audit_path_examples() -> None:
    """RFC 6962 §2.1.3: the tree over d0..d6 and its example audit paths."""
    a, b, c, d, e, f, j = LEAVES[:7]
    g, h, i = _node(a, b), _node(c, d), _node(e, f)
    k, l_ = _node(g, h), _node(i, j)
    root = _node(k, l_)
    examples = {0: [b, h, l_], 3: [c, g, l_], 4: [f, j, k], 6: [i, k]}
    for index, path in examples.items():
        assert inclusion_proof(LEAVES, index, 7) == path, index
        assert verify_inclusion(LEAVES[index], index, 7, path, root)
    assert inclusion_proof(LEAVES, 0, 1) == []
    assert verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])


@settings(max_examples=300, deadline=None)
@given(index_and_size())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    index, size = case
    proof = inclusion_proof(LEAVES, index, size)
    assert proof == ref_path(index, LEAVES[:size])
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@settings(max_examples=200, deadline=None)
@given(case=index_and_size(), other=st.integers(0, N - 1), bit=st.integers(0, 255))
def test_inclusion_fails_for_anything_wrong(case: tuple[int, int], other: int,
                                            bit: int) -> None:
    index, size = case
    leaf, root = LEAVES[index], ROOTS[size]
    proof = inclusion_proof(LEAVES, index, size)
    assert verify_inclusion(leaf, index, size, proof, root)
    # another position for the same leaf, another leaf at the same position
    if other != index:
        assert not verify_inclusion(leaf, other, size, proof, root)
        assert not verify_inclusion(LEAVES[other], index, size, proof, root)
    # another root, or another size with that size's own root
    assert not verify_inclusion(leaf, index, size, proof, _flip(root, bit))
    if other + 1 != size:
        assert not verify_inclusion(leaf, index, other + 1, proof, ROOTS[other + 1])
    # one proof element changed, one dropped, one added
    for position in range(len(proof)):
        bad = list(proof)
        bad[position] = _flip(bad[position], bit)
        assert not verify_inclusion(leaf, index, size, bad, root)
        assert not verify_inclusion(leaf, index, size, proof[:position] + proof[position + 1:],
                                    root)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    assert not verify_inclusion(leaf, index, size, [root, *proof], root)


@settings(max_examples=300, deadline=None)
@given(case=index_and_size(), claimed=st.integers(1, N))
def test_inclusion_proof_for_another_tree_shape_fails(case: tuple[int, int],
                                                      claimed: int) -> None:
    """A proof whose length does not fit (index, claimed size) never verifies, not even
    against the root it really leads to: the walk must end exactly at the top."""
    index, size = case
    proof = inclusion_proof(LEAVES, index, size)
    if index < claimed and len(ref_path(index, LEAVES[:claimed])) != len(proof):
        assert not verify_inclusion(LEAVES[index], index, claimed, proof, ROOTS[size])


def test_inclusion_of_a_leaf_beyond_the_tree_fails() -> None:
    assert not verify_inclusion(LEAVES[5], 5, 5, [], ROOTS[5])
    assert not verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(LEAVES[0], -1, 5, inclusion_proof(LEAVES, 0, 5), ROOTS[5])


def test_inclusion_proof_generation_refuses_bad_arguments() -> None:
    for index, size in ((5, 5), (-1, 5), (0, 0), (0, N + 1)):
        with pytest.raises(ValueError, match="inclusion proof"):
            inclusion_proof(LEAVES, index, size)


# ======================================================================= consistency

def test_rfc_consistency_examples() -> None:
    """RFC 6962 §2.1.3 (§2.1.4.3 of RFC 9162): proofs from sizes 3, 4, 6 to 7."""
    a, b, c, d, e, f, j = LEAVES[:7]
    g, i = _node(a, b), _node(e, f)
    k, l_ = _node(g, _node(c, d)), _node(i, j)
    examples = {3: [c, d, g, l_], 4: [l_], 6: [i, j, k]}
    for old, proof in examples.items():
        assert consistency_proof(LEAVES, old, 7) == proof, old
        assert verify_consistency(old, 7, ROOTS[old], _node(k, l_), proof)


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_every_consistency_proof_verifies(sizes: tuple[int, int]) -> None:
    old, new = sizes
    proof = consistency_proof(LEAVES, old, new)
    assert proof == ref_subproof(old, LEAVES[:new], True)
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@settings(max_examples=200, deadline=None)
@given(sizes=two_sizes(), other=st.integers(0, N), bit=st.integers(0, 255))
def test_consistency_fails_for_anything_wrong(sizes: tuple[int, int], other: int,
                                              bit: int) -> None:
    old, new = sizes
    old_root, new_root = ROOTS[old], ROOTS[new]
    proof = consistency_proof(LEAVES, old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    # a tampered root at either end
    assert not verify_consistency(old, new, _flip(old_root, bit), new_root, proof)
    assert not verify_consistency(old, new, old_root, _flip(new_root, bit), proof)
    assert not verify_consistency(old, new, new_root, old_root, proof)
    # another size at either end, with that size's own root
    if other != old:
        assert not verify_consistency(other, new, ROOTS[other], new_root, proof)
    if other != new:
        assert not verify_consistency(old, other, old_root, ROOTS[other], proof)
    # one proof element changed, one dropped, one added
    for position in range(len(proof)):
        bad = list(proof)
        bad[position] = _flip(bad[position], bit)
        assert not verify_consistency(old, new, old_root, new_root, bad)
        assert not verify_consistency(old, new, old_root, new_root,
                                      proof[:position] + proof[position + 1:])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    assert not verify_consistency(old, new, old_root, new_root, [old_root, *proof])


def test_consistency_detects_a_rewritten_history() -> None:
    """A log that changed one old entry cannot prove its new root extends the old one."""
    rewritten = list(LEAVES[:40])
    rewritten[17] = _leaf(b"something else")
    forged_root = ref_mth(rewritten)
    for old in range(1, 40):
        proof = consistency_proof(rewritten, old, 40)
        if old > 17:  # the old tree contained entry 17 as it was
            assert not verify_consistency(old, 40, ROOTS[old], forged_root, proof), old
        else:  # the change is after the old tree: an honest extension of it
            assert verify_consistency(old, 40, ROOTS[old], forged_root, proof), old


def test_consistency_edge_cases() -> None:
    # the empty tree is a prefix of every tree, with an empty proof
    for new in (0, 1, 7, N):
        assert consistency_proof(LEAVES, 0, new) == []
        assert verify_consistency(0, new, EMPTY_ROOT, ROOTS[new], [])
    assert not verify_consistency(0, 7, EMPTY_ROOT, ROOTS[7], [ROOTS[7]])
    assert not verify_consistency(0, 7, ROOTS[1], ROOTS[7], [])
    # a tree is consistent with itself only with an empty proof and the same root
    for size in (1, 7, N):
        assert consistency_proof(LEAVES, size, size) == []
        assert verify_consistency(size, size, ROOTS[size], ROOTS[size], [])
        assert not verify_consistency(size, size, ROOTS[size], ROOTS[size], [ROOTS[size]])
        assert not verify_consistency(size, size, ROOTS[size], ROOTS[size - 1], [])
    # non-trivial sizes need a proof; shrinking and negative sizes are never consistent
    assert not verify_consistency(3, 7, ROOTS[3], ROOTS[7], [])
    assert not verify_consistency(7, 3, ROOTS[7], ROOTS[3], consistency_proof(LEAVES, 3, 7))
    assert not verify_consistency(-1, 3, ROOTS[1], ROOTS[3], consistency_proof(LEAVES, 1, 3))
    assert not verify_consistency(1, -3, ROOTS[1], ROOTS[3], consistency_proof(LEAVES, 1, 3))
    # a crafted "proof" that a tree of 3 shrank to 2: it would pass the RFC 9162 walk,
    # which assumes old <= new, so the sizes must be checked first
    x, c = LEAVES[0], LEAVES[1]
    assert not verify_consistency(3, 2, x, _node(x, c), [x, c])


def test_consistency_proof_generation_refuses_bad_arguments() -> None:
    for old, new in ((5, 4), (-1, 4), (0, N + 1), (3, -1)):
        with pytest.raises(ValueError, match="consistency proof"):
            consistency_proof(LEAVES, old, new)


# ======================================================================= hostile input

_junk: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.binary(max_size=40),
    st.text(max_size=5), st.just(LEAVES[0]), st.lists(st.binary(max_size=40), max_size=4))
_proofs: st.SearchStrategy[Any] = st.one_of(
    _junk, st.lists(st.one_of(st.binary(min_size=32, max_size=32), _junk), max_size=80))


@settings(max_examples=500, deadline=None)
@given(leaf=_junk, index=_junk, size=_junk, proof=_proofs, root=_junk)
def test_verify_inclusion_never_raises(leaf: Any, index: Any, size: Any, proof: Any,
                                       root: Any) -> None:
    assert verify_inclusion(leaf, index, size, proof, root) in (True, False)


@settings(max_examples=500, deadline=None)
@given(old=_junk, new=_junk, old_root=_junk, new_root=_junk, proof=_proofs)
def test_verify_consistency_never_raises(old: Any, new: Any, old_root: Any, new_root: Any,
                                         proof: Any) -> None:
    assert verify_consistency(old, new, old_root, new_root, proof) in (True, False)


def test_verify_refuses_wrong_types_that_would_otherwise_verify() -> None:
    proof = inclusion_proof(LEAVES, 1, 2)
    assert verify_inclusion(LEAVES[1], 1, 2, proof, ROOTS[2])
    assert not verify_inclusion(LEAVES[1], True, 2, proof, ROOTS[2])  # bool is no index
    mutable_leaf: Any = bytearray(LEAVES[1])
    one_shot_proof: Any = iter(proof)
    assert not verify_inclusion(mutable_leaf, 1, 2, proof, ROOTS[2])
    assert not verify_inclusion(LEAVES[1], 1, 2, one_shot_proof, ROOTS[2])
    cproof = consistency_proof(LEAVES, 1, 2)
    assert verify_consistency(1, 2, ROOTS[1], ROOTS[2], cproof)
    assert not verify_consistency(True, 2, ROOTS[1], ROOTS[2], cproof)
    assert not verify_consistency(1, 2, ROOTS[1], ROOTS[2], [*cproof, *[ROOTS[2]] * 1000])
