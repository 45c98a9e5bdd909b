"""Two large batches from one peer on one lane, accepted at once: the receiver yields to
the event loop every ``OPEN_SLICE`` envelopes it opens, so their opening interleaves and
either may be written first. Each message is still stored and released exactly once, in
sequence order, every copy gets the same receipt, and no gap is left reported.

Real SQLite and the real writer thread (the harness of the receiver's property tests).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.federation import receiver as receiver_module
from tests.integration.test_receiver_properties import (
    BIG_WINDOW,
    Harness,
    assert_released_exactly,
    receipt_of,
)


async def _run() -> None:
    async with Harness(("US-JS",), BIG_WINDOW) as h:
        sender = h.senders["US-JS"]
        slice_ = receiver_module.OPEN_SLICE
        n = slice_ * 5
        # the later seqs first, then the earlier ones overlapping the later (re-sealed
        # copies of the overlap): each batch spans several slices
        late = [sender.copy(seq, 0) for seq in range(slice_ * 2 + 1, n + 1)]
        early = [sender.copy(seq, 0 if seq <= slice_ * 2 else 1)
                 for seq in range(1, slice_ * 3 + 1)]
        opened: list[int] = []
        real_open = h.receiver._open

        async def spying(raw: bytes) -> Any:
            opened.append(0 if raw in early else 1)
            return await real_open(raw)
        h.receiver._open = spying  # type: ignore[method-assign]

        got_late, got_early = await asyncio.gather(h.accept(late), h.accept(early))
        # the two batches' openings did interleave (else this tests nothing new)
        last_late = len(opened) - 1 - opened[::-1].index(1)
        assert opened.index(0) < last_late, opened
        outcomes = {seq: o for seq, o in zip(range(slice_ * 2 + 1, n + 1), got_late,
                                             strict=True)}
        for seq, o in zip(range(1, slice_ * 3 + 1), got_early, strict=True):
            assert o.error is None, (seq, o.error)
            if seq in outcomes:
                assert receipt_of(o) == receipt_of(outcomes[seq])
                assert o.duplicate != outcomes[seq].duplicate, seq
            outcomes.setdefault(seq, o)
        assert all(o.error is None for o in outcomes.values())
        for seq in range(1, n + 1):
            sender.check_receipt(seq, receipt_of(outcomes[seq]))
        assert_released_exactly(await h.released(), sender, n)
        assert_released_exactly([r for batch in h.callbacks for r in batch], sender, n)
        assert h.receiver.gaps == {}


def test_two_large_batches_of_one_lane_interleave_and_release_once_in_order() -> None:
    asyncio.run(_run())
