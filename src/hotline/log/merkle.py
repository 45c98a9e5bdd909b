"""Merkle tree hashing, inclusion and consistency proofs (RFC 6962 §2.1, RFC 9162 §2.1).

The tree is the one Certificate Transparency uses, so its proofs are small (about
log2(n) hashes) and its definitions are public and reviewed:

* a leaf's hash is ``SHA-256(0x00 || data)`` and an inner node's is
  ``SHA-256(0x01 || left || right)``. The distinct prefixes keep a leaf from ever being
  passed off as an inner node (a second-preimage attack on the tree);
* the tree over n leaves splits at k, the largest power of two below n: the left
  subtree is perfect with k leaves, the right one holds the rest. So a tree that grows
  only ever gains nodes on its right edge, which is what makes consistency proofs work;
* the root of the empty tree is ``SHA-256("")``.

Everything here is pure (hashlib only). Proof *generation* takes the full list of leaf
hashes and trusts it; proof *verification* takes whatever a peer sent and answers a
plain True or False, never raising, whatever the sizes, types or lengths it is handed.

A proof is only as good as the (size, root) pair it is checked against: for some
index/size pairs the same proof hashes up the same way for two sizes, so a verifier must
take size and root together from one signed checkpoint (``hotline.protocol.checkpoint``),
never the size from one place and the root from another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from hotline.protocol.tree import (
    EMPTY_ROOT,
    HASH_SIZE,
    max_consistency_proof,
    max_inclusion_proof,
)

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "CompactRange", "consistency_proof",
           "consistency_proof_from", "inclusion_proof", "inclusion_proof_from", "leaf_hash",
           "node_hash", "root_from_leaf_hashes", "verify_consistency", "verify_inclusion"]

_LEAF = b"\x00"
_NODE = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Hash of one log entry: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an inner node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): where the tree splits."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    """A non-negative int. Bools are ints in Python, but ``True`` is no tree size."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if not _is_hash(h):
            raise ValueError(f"leaf hashes must be {HASH_SIZE} bytes each")


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of the leaves whose hashes are ``hashes``.

    Computed level by level rather than by the RFC's recursion: pair neighbours, carry a
    lone last node up unchanged, repeat. At every level the last, partial node then
    covers its leaves exactly as the RFC's split does (a perfect left part of the largest
    power of two, the rest on the right), so the result is the same hash, while the work
    is one list comprehension per level (about 20 for a million leaves) and n - 1 node
    hashes in all.
    """
    _check_hashes(hashes)
    if not hashes:
        return EMPTY_ROOT
    level: Sequence[bytes] = hashes
    sha, node = _sha256, _NODE
    while len(level) > 1:
        upper = [sha(node + a + b).digest() for a, b in zip(level[0::2], level[1::2],
                                                              strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


class CompactRange:
    """The right edge of a growing tree: enough to append leaves and compute the root.

    A tree of n leaves is a sequence of perfect subtrees, one per set bit of n, largest
    (leftmost) first; the root is those subtrees' roots folded together from the right.
    Keeping just those roots (at most 64 for any n below 2^64) lets a log append a leaf
    in O(log n) time and memory without reading its past entries, and the state is
    small enough to store in one database row next to the size (``to_state`` /
    ``from_state``).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf (by its hash) at the right edge.

        Appending to a tree of size s merges one pair of equal subtrees per trailing one
        bit of s, like carrying in binary addition.
        """
        if not _is_hash(leaf_hash):
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        hashes, s, h = self._hashes, self._size, leaf_hash
        while s & 1:
            h = _sha256(_NODE + hashes.pop() + h).digest()
            s >>= 1
        hashes.append(h)
        self._size += 1

    def append_nodes(self, leaf_hash: bytes) -> list[bytes]:
        """Like :meth:`append`, and return the roots of the perfect subtrees the leaf
        completed, lowest level first (level L's node index is ``(size >> L) - 1``):
        what a store keeps so that proofs need no rehashing of the leaves."""
        if not _is_hash(leaf_hash):
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        hashes, s, h = self._hashes, self._size, leaf_hash
        completed: list[bytes] = []
        while s & 1:
            h = _sha256(_NODE + hashes.pop() + h).digest()
            completed.append(h)
            s >>= 1
        hashes.append(h)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each of ``leaf_hashes`` in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """The tree's root: equal to ``root_from_leaf_hashes`` over the same leaves."""
        if not self._hashes:
            return EMPTY_ROOT
        hashes = self._hashes
        r = hashes[-1]
        for h in reversed(hashes[:-1]):
            r = _sha256(_NODE + h + r).digest()
        return r

    def copy(self) -> CompactRange:
        """An independent copy (appending to one leaves the other as it was)."""
        out = CompactRange()
        out._size = self._size
        out._hashes = list(self._hashes)
        return out

    def to_state(self) -> list[bytes]:
        """The subtree roots, largest first: with ``size`` this is the whole state."""
        return list(self._hashes)

    @classmethod
    def from_state(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild from ``size`` and ``to_state()``; ValueError if they do not fit.

        A tree of ``size`` leaves has exactly one subtree root per set bit of ``size``,
        so a stored state with any other count (a truncated or mixed-up row) is refused
        rather than silently producing wrong roots.
        """
        if not _is_size(size):
            raise ValueError("size must be a non-negative integer")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a range of size {size} has {size.bit_count()} subtree "
                             f"hashes, got {len(hashes)}")
        if not all(_is_hash(h) for h in hashes):
            raise ValueError(f"subtree hashes must be {HASH_SIZE} bytes each")
        out = cls()
        out._size = size
        out._hashes = list(hashes)
        return out

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def _check_sizes(hashes: Sequence[bytes], low: int, size: int, what: str) -> None:
    if not (_is_size(low) and _is_size(size)) or size > len(hashes):
        raise ValueError(f"{what}: need 0 <= {low} <= {size} <= {len(hashes)} leaves")


Subtree = Callable[[int, int], bytes]
"""``subtree(lo, hi)``: the root of the tree over leaves ``lo .. hi-1``."""


def _from_list(hashes: Sequence[bytes]) -> Subtree:
    return lambda lo, hi: root_from_leaf_hashes(hashes[lo:hi])


def inclusion_proof(hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    RFC 9162 §2.1.3.1 (PATH): walking down from the root, each step records the root of
    the subtree the leaf is *not* in; the list is returned bottom-up, as the verifier
    consumes it. The hashes are the caller's own, so bad arguments raise ValueError.
    """
    _check_sizes(hashes, index, size, "inclusion proof")
    return inclusion_proof_from(_from_list(hashes), index, size)


def inclusion_proof_from(subtree: Subtree, index: int, size: int) -> list[bytes]:
    """:func:`inclusion_proof` over any source of subtree roots (e.g. a stored tree)."""
    if not (_is_size(index) and _is_size(size)) or index >= size:
        raise ValueError(f"inclusion proof: index {index} is not below size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo += k
    path.reverse()
    return path


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """True if ``proof`` shows the leaf at ``index`` in the tree (``size``, ``root``).

    RFC 9162 §2.1.3.2. ``fn`` and ``sn`` are the positions of the current node and of
    the tree's last node at the current level; whether ``fn`` is a right child (odd) or
    the last node of its level says on which side the next proof hash goes, and a
    correct proof brings ``sn`` to 0 exactly when it runs out.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(size)):
        return False
    if index >= size or not isinstance(proof, Sequence) \
            or len(proof) > max_inclusion_proof(size) or not all(_is_hash(p) for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Proof that the tree of ``old_size`` leaves is a prefix of that of ``new_size``.

    RFC 9162 §2.1.4.1 (PROOF/SUBPROOF). Empty when there is nothing to prove: the old
    tree is empty, or the two are the same tree. The hashes are the caller's own, so bad
    sizes raise ValueError.
    """
    _check_sizes(hashes, old_size, new_size, "consistency proof")
    return consistency_proof_from(_from_list(hashes), old_size, new_size)


def consistency_proof_from(subtree: Subtree, old_size: int, new_size: int) -> list[bytes]:
    """:func:`consistency_proof` over any source of subtree roots (e.g. a stored tree)."""
    if not (_is_size(old_size) and _is_size(new_size)) or old_size > new_size:
        raise ValueError(f"consistency proof: old size {old_size} > new size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    # Invariant: what is left to prove is SUBPROOF(m, leaves[lo:hi], complete).
    while hi - lo != m:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        # The old tree's boundary falls inside a right subtree: the verifier cannot know
        # that subtree's root from the old root alone, so the proof carries it.
        proof.append(subtree(lo, hi))
    proof.reverse()
    return proof


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """True if ``proof`` shows tree (``old_size``, ``old_root``) is a prefix of the new one.

    RFC 9162 §2.1.4.2: one pass over the proof rebuilds both the old root (from the
    hashes left of the old tree's right edge) and the new one (from all of them), so
    both must come out right for the same proof. Edge cases: the empty tree is a prefix
    of every tree (its root must be ``EMPTY_ROOT`` and the proof empty); a tree is
    consistent with itself only with an empty proof and equal roots; a shrinking tree,
    a negative size or a malformed hash is never consistent.
    """
    if not (_is_size(old_size) and _is_size(new_size) and _is_hash(old_root)
            and _is_hash(new_root) and isinstance(proof, Sequence)):
        return False
    if old_size > new_size:
        return False
    if old_size == 0:
        return len(proof) == 0 and old_root == EMPTY_ROOT
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if not 0 < len(proof) <= max_consistency_proof(new_size) or not all(_is_hash(p) for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root is the first node.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
