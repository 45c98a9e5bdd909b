"""Link generations: how a link removed and accepted again starts afresh.

Each generation of a link owns its own range of sequence numbers: generation ``g`` sends
``g * 2**40 + 1``, ``g * 2**40 + 2``, … in both directions. A link never removed stays in
generation 0 and numbers 1, 2, … as before, so nothing changes on the wire for it. Both
sides move to the next generation when the link is removed (the remover at once; the peer
when it takes the signed ``link.removed`` notice, or when its own operator removes the
link too), so a re-linked pair agrees without any new field: an envelope of an earlier
generation is stale, one of a later generation means the peer re-linked after a removal
this side has not made, and both are refused by name (``link-generation``).

A generation holds 2**40 (about 10^12) envelopes per direction; generations 0 to 8190 keep
every sequence number below 2**53, the largest integer the canonical encoding carries.
"""

from __future__ import annotations

#: The envelope type of the signed notice that a party removed the link (its payload:
#: ``generation``, ``reason``, ``undeliverable`` count, ``calls`` ended).
REMOVED_TYPE = "link.removed"
GENERATION_BITS = 40
MAX_GENERATION = (2**53 >> GENERATION_BITS) - 2


def first_seq(generation: int) -> int:
    """The first sequence number of ``generation``."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"link generation {generation} is outside 0..{MAX_GENERATION}")
    return (generation << GENERATION_BITS) + 1


def generation_of(seq: int) -> int:
    """The generation a sequence number (>= 1) belongs to."""
    return (seq - 1) >> GENERATION_BITS
