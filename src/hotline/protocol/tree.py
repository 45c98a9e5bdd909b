"""The rules a Merkle tree head (size, root) and its proofs must obey (RFC 6962/9162).

Pure constants and checks, shared by the checkpoint wire format (``protocol.checkpoint``),
the witness that cosigns peers' checkpoints and the proof verifiers
(``hotline.log.merkle``). A signature says *who* stated a tree head; these rules say
whether the statement can describe any tree at all. A witness that cosigned an
impossible head (size 0 with a root other than the empty tree's) would hold a "latest
cosigned tree" that no honest log can ever extend, and refuse that origin for ever.
"""

from __future__ import annotations

import hashlib

#: Bytes of a SHA-256 hash: a leaf, a node, a root.
HASH_SIZE = 32

#: Root of the tree with no leaves (RFC 6962 §2.1: the hash of the empty string).
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: The largest tree size a checkpoint may state: 2^48 entries is ten thousand entries a
#: second for 890 years, far beyond any node's log, while every size (and size + 1, and
#: a sum of two) still fits a signed 64-bit column and a JSON-safe integer (2^53 - 1).
MAX_TREE_SIZE = 2**48


def max_inclusion_proof(size: int) -> int:
    """The most hashes an inclusion proof in a tree of ``size`` leaves holds:
    ceil(log2(size)), the depth of the tree (0 for a single leaf)."""
    return (size - 1).bit_length() if size > 0 else 0


def max_consistency_proof(new_size: int) -> int:
    """The most hashes a consistency proof to a tree of ``new_size`` leaves holds:
    one per level walked down (ceil(log2(new_size))), plus the subtree root carried when
    the old tree ends inside a right subtree."""
    return max_inclusion_proof(new_size) + 1 if new_size > 1 else 0


def tree_head_problem(size: int, root: bytes) -> str | None:
    """Why (``size``, ``root``) can be the head of no tree, or None if it can.

    ``size`` must be an int (not a bool) from 0 to ``MAX_TREE_SIZE``; ``root`` must be
    ``HASH_SIZE`` bytes; the empty tree has exactly one root, ``EMPTY_ROOT``. (For any
    other size every 32-byte value is some tree's root, so nothing more is checkable
    from the head alone.)
    """
    if type(size) is not int or not 0 <= size <= MAX_TREE_SIZE:
        return f"a tree size must be an integer from 0 to 2^48, got {size!r}"
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        return f"a tree root must be {HASH_SIZE} bytes"
    if size == 0 and root != EMPTY_ROOT:
        return ("a tree of size 0 has the empty tree's root (SHA-256 of nothing), "
                "and this root is another")
    return None
