"""Lanes: the independent in-order sequences a link carries (docs/protocol.md, "Lanes").

* ``control``: call signals and states, queries and answers, conversation messages,
  notices, incident entries, receipts of every kind, desk reports, link tests, key and
  link statements. It is the sequence every link had before lanes existed: an envelope
  without a ``lane`` field is a control envelope.
* ``bulk``: what operators send with ``hotline send`` / ``POST /api/v1/messages``.

Each lane is exactly-once and in order within itself. Across lanes, a bulk envelope
names in its signed ``after`` field the last control sequence number its sender had
committed to the link when it was sealed; the receiver releases it only once the control
lane is released up to there, so nothing bulk overtakes the control traffic it may refer
to. Control never waits for bulk.

Protocol versions: 1 knows one sequence (the control lane carries everything); 2 knows
both lanes. A node learns the version a peer speaks from the ``protocol`` field of the
peer's answer to an envelope batch, and seals bulk-lane envelopes only to a peer that
said 2.
"""

from __future__ import annotations

from typing import Final, Literal

Lane = Literal["control", "bulk"]
CONTROL: Final = "control"
BULK: Final = "bulk"
#: in the order the sender serves them
LANES: tuple[Lane, ...] = (CONTROL, BULK)

#: the federation protocol this code speaks: 2 = with lanes
PROTOCOL = 2
#: the version before lanes (one sequence per link)
ONE_LANE = 1


def lane_of(value: object) -> Lane:
    """``value`` as a lane name; raises ValueError for anything else."""
    if value == CONTROL:
        return CONTROL
    if value == BULK:
        return BULK
    raise ValueError(f"unknown lane {value!r}")
