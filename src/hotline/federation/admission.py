"""Admission control for the federation API: how much a client address, and then a
verified peer, may make this node verify and store per second.

Two stages, each a pair of token buckets (envelopes/s and bytes/s) on the node's
monotonic clock:

* **per client address, before authentication** — charged with the declared body length
  before the body is read, and with the number of envelope lines before any signature is
  checked, so a flood costs the node little more than reading a header;
* **per verified sender, after verification** — charged only for envelopes whose
  signature verified, so an envelope that merely *names* a peer cannot spend that peer's
  budget. Each peer has three budgets: ``control`` (call signals and states, receipts,
  desk reports: what makes a call ring and be answered), ``bulk`` (the rest of the
  control protocol lane: conversations, notices, ...) and ``bulk-lane`` (the bulk
  protocol lane, docs/protocol.md §11.1), so neither a peer's feed on the bulk lane
  nor its messages use up what its call signals need, and a refused bulk-lane
  envelope never leaves a hole in the control lane's sequence.

The address stage keeps a budget per (address, lane the request declares): a sender
sends one lane per request and names the bulk lane in its query (``?lane=bulk``), so
bulk requests cannot use up the address budget of control requests; each is bounded.

A refusal changes nothing: the refused envelopes are not stored and get the error
``rate-limited`` with ``retry_after`` (whole seconds); the HTTP answer carries
``Retry-After``. Within a batch, a lane admits a prefix of its envelopes: once one is
refused, every later one of that lane is refused too, so a sender never sees gaps that
it did not cause.

Memory is bounded: at most ``MAX_ADDRESSES`` address buckets are kept (full ones are
forgotten first, since a full bucket is what a new one would be), one pair per budget
per linked peer.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from hotline.clock import Clock
from hotline.errors import EnvelopeRejected
from hotline.nodedir.config import AdmissionConfig, PeerLimits

RATE_LIMITED = "rate-limited"
#: envelope types that keep a call moving: admitted from their own budget
CONTROL_TYPES = frozenset({"call.place", "call.state", "call.cancel", "conv.receipt", "desks"})
MAX_ADDRESSES = 65_536
#: the longest ``Retry-After`` this node asks for (it is re-asked if still over)
MAX_RETRY_AFTER_S = 60


#: the budget of a peer's bulk *protocol lane* (docs/protocol.md §11.1): kept apart
#: from every budget a control-lane envelope is charged to, so bulk cannot use them up
BULK_LANE = "bulk-lane"

_FROM = re.compile(rb'"from":"([A-Z0-9-]{1,32})"')
_TYPE = re.compile(rb'"type":"([a-z][a-z0-9.-]{0,63})"')
_BULK_LANE = b'"lane":"bulk"'


def claimed(raw: bytes) -> tuple[str, str, str] | None:
    """The sender, type and protocol lane an envelope *claims*, read without parsing or
    verifying it: only a hint for :meth:`BatchAdmission.precheck` (a wrong hint can
    refuse only the envelope that carries it). None if not found."""
    sender, type_ = _FROM.search(raw), _TYPE.search(raw)
    if sender is None or type_ is None:
        return None
    return sender.group(1).decode(), type_.group(1).decode(), \
        "bulk" if _BULK_LANE in raw else "control"


def lane_of(envelope_type: str, protocol_lane: str = "control") -> str:
    """The budget an envelope is charged to: ``"bulk-lane"`` for the bulk protocol lane;
    on the control lane ``"control"`` for call signals and states, receipts and desk
    reports, ``"bulk"`` for the rest (conversations, notices, ...)."""
    if protocol_lane == "bulk":
        return BULK_LANE
    return "control" if envelope_type in CONTROL_TYPES else "bulk"


def request_lane(query: bytes | str) -> str:
    """The protocol lane a batch request declares in its query string: ``"bulk"`` for
    ``lane=bulk``, else ``"control"`` (a sender sends one lane per request, and a
    sender of protocol 1 declares nothing). Only picks the address budget charged: a
    false declaration buys an address no more than both lanes' budgets."""
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    return "bulk" if "lane=bulk" in text.split("&") else "control"


class RateLimited(EnvelopeRejected):
    """Refused for now: over a budget. ``retry_after_s`` is when it would fit (>= 1)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(RATE_LIMITED, message, status=429)
        self.retry_after_s = retry_after_s

    def as_result(self) -> dict[str, object]:
        """The per-envelope result: the error with ``retry_after`` (whole seconds)."""
        return {**self.to_dict(), "retry_after": self.retry_after_s}


def retry_after_seconds(wait_s: float) -> int:
    """A wait as a ``Retry-After`` value: whole seconds, rounded up, 1 .. MAX_RETRY_AFTER_S."""
    if not math.isfinite(wait_s):
        return MAX_RETRY_AFTER_S
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(wait_s)))


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full. Times are monotonic
    seconds. Over any interval of length ``t`` it hands out at most ``burst + rate * t``.

    Raises ``ValueError`` for a non-positive or non-finite rate or burst."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("rate", self.rate), ("burst", self.burst)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"token bucket {name} must be a positive number")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now  # a clock read that went backwards adds nothing

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are there (0 if now; inf if above ``burst``)."""
        self._refill(now)
        if amount <= self.tokens:
            return 0.0
        if amount > self.burst:
            return math.inf
        return (amount - self.tokens) / self.rate

    def take(self, amount: float) -> None:
        """Spend ``amount`` tokens; only after :meth:`wait` said 0 for it."""
        self.tokens -= amount


@dataclass
class Budget:
    """An envelopes bucket and a bytes bucket, charged together or not at all."""

    envelopes: TokenBucket
    bytes: TokenBucket
    #: what the last refused request asked for (envelopes, bytes), capped at the bursts:
    #: until that is there, a request is refused on its headers (see
    #: :meth:`Admission.address_exhausted`); cleared by the next admitted charge
    owed: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def of(cls, envelopes_per_s: float, envelopes_burst: float, bytes_per_s: float,
           bytes_burst: float) -> Budget:
        return cls(TokenBucket(envelopes_per_s, envelopes_burst),
                   TokenBucket(bytes_per_s, bytes_burst))

    def try_take(self, envelopes: int, nbytes: int, now: float) -> float:
        """Charge both buckets and return 0, or charge nothing and return the seconds
        until both would have enough."""
        wait = max(self.envelopes.wait(envelopes, now), self.bytes.wait(nbytes, now))
        if wait == 0:
            self.envelopes.take(envelopes)
            self.bytes.take(nbytes)
            self.owed = (0.0, 0.0)
        else:
            self.owed = (min(envelopes, self.envelopes.burst), min(nbytes, self.bytes.burst))
        return wait

    def is_full(self, now: float) -> bool:
        """Whether both buckets are full at ``now`` (then it is as good as a new one)."""
        return self.envelopes.wait(self.envelopes.burst, now) == 0 \
            and self.bytes.wait(self.bytes.burst, now) == 0


@dataclass(frozen=True)
class Refusal:
    """What one sender had refused in one batch, for the single security-log line."""

    sender: str
    lanes: tuple[str, ...]
    envelopes: int
    nbytes: int
    retry_after_s: int


class Admission:
    """The node's budgets. Not thread-safe: used from the event loop only."""

    def __init__(self, config: AdmissionConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        #: (client address, declared request lane) -> budget
        self._addresses: OrderedDict[tuple[str, str], Budget] = OrderedDict()
        self._senders: dict[tuple[str, str], Budget] = {}
        #: every refusal's line goes through here: a flood cannot flood the log
        self.log = ThrottledLog(logging.getLogger("hotline.security"), clock)
        #: (error id, count) for each request refused on its client address's budget
        #: (the rejected-envelopes metric); set by the node
        self.on_refused: Callable[[str, int], None] | None = None

    # -- before authentication ----------------------------------------------------------
    def _address(self, address: tuple[str, str]) -> Budget:
        budget = self._addresses.get(address)
        if budget is None:
            if len(self._addresses) >= MAX_ADDRESSES:
                self._forget_addresses()
            c = self._config
            budget = Budget.of(c.address_envelopes_per_second, c.address_envelopes_burst,
                               c.address_bytes_per_second, c.address_bytes_burst)
            self._addresses[address] = budget
        else:
            self._addresses.move_to_end(address)
        return budget

    def _forget_addresses(self) -> None:
        now = self._clock.monotonic()
        for address in [a for a, b in self._addresses.items() if b.is_full(now)]:
            del self._addresses[address]
        while len(self._addresses) >= MAX_ADDRESSES:
            self._addresses.popitem(last=False)  # least recently seen

    def address_exhausted(self, address: str, lane: str = "control") -> int | None:
        """``Retry-After`` if ``address``'s budget for requests of ``lane`` cannot have
        even one envelope now, or not yet what its last refused request asked for (its
        request is refused on its headers alone), else None. Charges nothing.

        Why the last refusal counts: a flooder's batches need hundreds of envelopes
        each; were only one envelope required here, a refill of one token (1 ms at the
        default rate) would let its next batch through to be read and split, only to be
        refused on its line count, so nearly every batch would cost the node a body.
        An honest sender is not held longer than the ``Retry-After`` it was told."""
        budget = self._addresses.get((address, lane))
        if budget is None:
            return None
        now = self._clock.monotonic()
        owed_envelopes, owed_bytes = budget.owed
        wait = max(budget.envelopes.wait(max(1.0, owed_envelopes), now),
                   budget.bytes.wait(owed_bytes, now))
        if wait == 0:
            return None
        self._refused(1)  # both callers refuse the request on this answer
        return retry_after_seconds(wait)

    def admit_address(self, address: str, *, envelopes: int, nbytes: int,
                      lane: str = "control") -> int | None:
        """Charge a client address's budget for requests of ``lane`` (each lane has its
        own, of the ``address_*`` sizes, so bulk requests cannot use up what a call's
        request needs); None if admitted, else ``Retry-After`` seconds."""
        wait = self._address((address, lane)).try_take(envelopes, nbytes, self._clock.monotonic())
        if wait == 0:
            return None
        self._refused(max(1, envelopes))
        return retry_after_seconds(wait)

    def _refused(self, count: int) -> None:
        if self.on_refused is not None:
            self.on_refused(RATE_LIMITED, count)

    # -- after verification -------------------------------------------------------------
    def _limits(self, sender: str) -> PeerLimits:
        return self._config.peers.get(sender, self._config.default)

    def budget(self, sender: str, lane: str) -> Budget:
        """The budget of a verified sender's lane (made from its limits when first used)."""
        budget = self._senders.get((sender, lane))
        if budget is None:
            lim = self._limits(sender)
            if lane == "control":
                budget = Budget.of(lim.control_envelopes_per_second, lim.control_envelopes_burst,
                                   lim.control_bytes_per_second, lim.control_bytes_burst)
            else:
                budget = Budget.of(lim.envelopes_per_second, lim.envelopes_burst,
                                   lim.bytes_per_second, lim.bytes_burst)
            self._senders[(sender, lane)] = budget
        return budget

    def batch(self) -> BatchAdmission:
        """The admission of one request's envelopes, in batch order."""
        return BatchAdmission(self, self._clock.monotonic())

    def known(self, sender: str) -> bool:
        """Whether ``sender`` already has budgets (unverified names never create any)."""
        return any((sender, lane) in self._senders for lane in ("control", "bulk", BULK_LANE))


class BatchAdmission:
    """Admits one request's envelopes lane by lane, each lane a prefix: once an envelope
    of a (sender, lane) is refused, every later one of it in this batch is refused too."""

    def __init__(self, admission: Admission, now: float) -> None:
        self._admission = admission
        self._now = now
        self._blocked: dict[tuple[str, str], int] = {}
        self._prechecked: dict[tuple[str, str], int] = {}
        self._pre_blocked: dict[tuple[str, str], int] = {}  # before verification
        self._refused: dict[str, list[tuple[str, int]]] = {}

    def precheck(self, sender: str, type_: str, size: int,
                 protocol_lane: str = "control") -> int | None:
        """Before verification, on the envelope's *claimed* sender: ``Retry-After`` if
        that sender's lane is already empty (the envelope could not be admitted however
        it verifies, so the node does not spend a signature check on it), else None.
        Charges nothing, so a forger naming a peer cannot spend that peer's budget; and
        it only reads budgets that verified envelopes created."""
        key = (sender, lane_of(type_, protocol_lane))
        if key not in self._pre_blocked:
            if not self._admission.known(sender):
                return None
            # counting the envelopes of this lane already let through to verification,
            # so a batch far over the budget costs only as many checks as could pass
            ahead = self._prechecked.get(key, 0) + 1
            bucket = self._admission.budget(*key).envelopes
            if bucket.wait(ahead, self._now) == 0:
                self._prechecked[key] = ahead
                return None
            # when the ones let through are paid for and one more token is there
            self._pre_blocked[key] = retry_after_seconds(
                (ahead - bucket.tokens) / bucket.rate)
        self._refuse(key, size)
        return self._pre_blocked[key]

    def admit(self, sender: str, type_: str, size: int,
              protocol_lane: str = "control") -> int | None:
        """Charge a verified envelope: None if admitted, else its ``Retry-After``."""
        key = (sender, lane_of(type_, protocol_lane))
        if key not in self._blocked:
            wait = self._admission.budget(*key).try_take(1, size, self._now)
            if wait == 0:
                return None
            self._blocked[key] = retry_after_seconds(wait)
        self._refuse(key, size)
        return self._blocked[key]

    def _refuse(self, key: tuple[str, str], size: int) -> None:
        self._refused.setdefault(key[0], []).append((key[1], size))

    def refusals(self) -> list[Refusal]:
        """One summary per sender that had anything refused, for the security log."""
        return [Refusal(sender, tuple(sorted({lane for lane, _ in items})), len(items),
                        sum(size for _, size in items),
                        max(max(self._blocked.get((sender, lane), 0),
                                self._pre_blocked.get((sender, lane), 0))
                            for lane, _ in items))
                for sender, items in sorted(self._refused.items())]


class ThrottledLog:
    """One logger line per event, at most ``per_window`` lines per ``window_s`` seconds
    (monotonic); beyond that lines are counted, and the next line written says how many
    were suppressed. So a flood of refusals cannot flood the security log, and the log
    still says how big the flood was."""

    def __init__(self, logger: logging.Logger, clock: Clock, *, per_window: int = 20,
                 window_s: float = 10.0) -> None:
        self._logger = logger
        self._clock = clock
        self._per_window = per_window
        self._window_s = window_s
        self._window_start = -math.inf
        self._written = 0
        self.suppressed = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log ``message % args`` unless over the limit; True if it was written."""
        now = self._clock.monotonic()
        if now - self._window_start >= self._window_s:
            self._window_start, self._written = now, 0
        if self._written >= self._per_window:
            self.suppressed += 1
            return False
        self._written += 1
        if self.suppressed:
            message += " (%d similar line(s) suppressed before this one)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._logger.warning(message, *args)
        return True
