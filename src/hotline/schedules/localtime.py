"""Local wall-clock time ↔ instants (ms since the epoch, UTC), with one rule for DST.

A local time ``L`` in a zone becomes **the first instant at which the zone's wall clock
reads ``L`` or later**. That one rule settles both PEP 495 cases:

- an ordinary local time: its one instant;
- a time in the **repeated hour** (autumn: 02:30 happens twice in Europe/Warsaw): the
  first occurrence, ``fold=0``;
- a time in the **skipped hour** (spring: 02:30 never happens in Europe/Warsaw): the
  first instant after the gap, the transition itself (03:00 CEST).

The rule is monotonic (a later local time never maps to an earlier instant), so turns
computed on local times and then mapped never overlap and never leave a hole; a turn that
maps to an empty span (both ends in the same skipped hour) simply does not occur.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS: Final = timedelta(milliseconds=1)
#: No IANA zone name is longer (the longest is about 30 characters).
MAX_ZONE_NAME: Final = 64


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; KeyError naming it when the tz database has no such zone.

    Names are looked up as file paths, so anything that is not a plausible zone name (too
    long, a directory such as ``Europe``, a path that escapes) is a KeyError too.
    """
    if not name or len(name) > MAX_ZONE_NAME or "\x00" in name:
        raise KeyError(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise KeyError(name) from None


def _ms(aware: datetime) -> int:
    return (aware - EPOCH) // ONE_MS


def to_local(ms: int, tz: ZoneInfo) -> datetime:
    """The instant ``ms`` as the zone's naive wall-clock time (the second 02:30 has fold=1)."""
    return (EPOCH + ms * ONE_MS).astimezone(tz).replace(tzinfo=None)


def to_ms(local: datetime, tz: ZoneInfo) -> int:
    """The first instant at which ``tz``'s wall clock reads ``local`` or later (see above).

    A ``local`` with ``fold=1`` in the repeated hour is its second occurrence (PEP 495):
    that is how :func:`to_local` marks it, so ``to_ms(to_local(ms)) == ms`` always (to the
    minute and below). Values read from files have ``fold=0``.
    """
    naive = local.replace(tzinfo=None, fold=0)
    first = _ms(naive.replace(tzinfo=tz, fold=0))
    second = _ms(naive.replace(tzinfo=tz, fold=1))
    if first <= second:  # ordinary (equal), or repeated: fold=0 is the earlier one
        return second if local.fold else first
    # Skipped: fold=1 reads the clock after the gap backwards, fold=0 forwards; the
    # transition lies between them. Find the first instant whose wall clock reads >= local.
    lo, hi = second, first
    while lo < hi:
        mid = (lo + hi) // 2
        if to_local(mid, tz).replace(fold=0) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return lo


def at(day: date, clock: time) -> datetime:
    """``day`` at the wall-clock time ``clock``, naive."""
    return datetime.combine(day, clock.replace(tzinfo=None, fold=0))
