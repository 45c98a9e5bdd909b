"""The link prober: tests every endpoint of every link, judges each, alarms and fails over.

Every ``[health] test_every_seconds`` (per link: ``[health.links.PARTY]``), on the
monotonic clock, it posts a signed probe (:mod:`hotline.protocol.linktest`) to each of
the link's endpoints at once and waits for the peer's signed answer, at most
``test_timeout_seconds`` (a round that takes longer than the interval delays the link's
next; a link's rounds never overlap, and each link has its own, so a stalled link delays
no other). An answer that verifies counts
as a test answered after its round trip; anything else (refused, timed out, a bad or
forged answer) as lost. :mod:`hotline.links.health` turns the outcomes into states.

When a state changes it is logged on ``hotline.links``. A link that goes ``degraded`` or
``down`` raises the alarm ``link-degraded`` or ``link-down`` (ringing ``[settings]
alarm_role``), an endpoint that goes down raises ``endpoint-down``; each is cleared when
its state is over (see :meth:`LinkProber._link_changed`). When the link's current
endpoint changes (the primary is down and an alternate answers) the failover is logged,
and the sender goes to the new one first (:meth:`order`).

The clock offset to the peer is measured too: the peer's signed answer time against the
midpoint of the round trip, shown only (the skew check stays the receiver's).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import httpx

from hotline.clock import Clock
from hotline.delivery.transport import read_capped
from hotline.health.alarms import Alarm, Alarms
from hotline.links.health import (
    DEGRADED,
    DOWN,
    UP,
    LinkHealth,
    Outcome,
    Sample,
    Thresholds,
)
from hotline.nodedir.config import HealthConfig
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys
from hotline.protocol.linktest import make_probe, verify_answer
from hotline.store.links import Link
from hotline.waits import cancel_and_wait, within

log = logging.getLogger("hotline.links")

LINKTEST_PATH = "/federation/v1/linktest"
#: a signed answer is about 400 bytes, a refusal's JSON less than 2 KiB
MAX_ANSWER_BYTES = 16 * 1024
#: the longest the prober sleeps between looks for a due link (new links, changed ones)
MAX_IDLE_S = 1.0

#: Posts a probe's bytes to a URL within a time limit (s): the answer's HTTP status and
#: body. Raises ``httpx.HTTPError`` or ``TimeoutError`` when there is no answer.
Post = Callable[[str, bytes, float], Awaitable[tuple[int, bytes]]]


class HttpPost:
    """:data:`Post` over HTTP: the node's own client for link tests."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(headers={"content-type": "application/json"})

    async def __call__(self, url: str, body: bytes, limit_s: float) -> tuple[int, bytes]:
        """Raises ``ValueError`` once the answer exceeds :data:`MAX_ANSWER_BYTES`: whoever
        answers at an endpoint (an impostor too) cannot make the node buffer more."""
        async def fetch() -> tuple[int, bytes]:
            async with self._client.stream("POST", url, content=body,
                                           timeout=limit_s) as response:
                return response.status_code, await read_capped(response, MAX_ANSWER_BYTES)
        return await within(fetch(), limit_s)

    async def close(self) -> None:
        await self._client.aclose()


def thresholds(config: HealthConfig) -> Thresholds:
    return Thresholds(window=config.window, degraded_loss=config.degraded_loss,
                      down_loss=config.down_loss, down_after=config.down_after,
                      degraded_rtt_ms=config.degraded_rtt_ms)


class LinkProber:
    task_name = "link-prober"

    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, clock: Clock,
                 alarms: Alarms, config: HealthConfig, post: Post | None = None) -> None:
        """``post``: how probes travel (default: HTTP, :class:`HttpPost`)."""
        self._me = me
        self._keys = keys
        self._peers = peers
        self._clock = clock
        self._alarms = alarms
        self._config = config
        self._thresholds = thresholds(config)
        self._own: HttpPost | None = None
        if post is None:
            post = self._own = HttpPost()
        self._post: Post = post
        self.links: dict[str, LinkHealth] = {}
        self._due: dict[str, float] = {}

    # -- what others read ----------------------------------------------------------------
    def order(self, party: str) -> Callable[[list[str]], list[str]]:
        """For the sender of ``party``: its endpoints ordered best first (the link's
        order while nothing is known)."""
        def ordered(endpoints: list[str]) -> list[str]:
            health = self.links.get(party)
            if health is None:
                return endpoints
            best = [e for e in health.order() if e in endpoints]
            return best + [e for e in endpoints if e not in best]
        return ordered

    # -- the task --------------------------------------------------------------------------
    async def run(self) -> None:
        """Each link's rounds in a task of their own: a link whose probes hang until the
        timeout (a blackholed or stalling peer) delays only its own next round, not every
        other link's. A round that fails ends the prober (the supervisor restarts it)."""
        rounds: dict[str, asyncio.Task[LinkHealth]] = {}
        try:
            while True:
                links = {link.party: link for link in self._peers.all()}
                for party, task in list(rounds.items()):
                    if task.done():
                        del rounds[party]
                        task.result()  # a round's error is the prober's
                for party in [p for p in self.links if p not in links]:
                    del self.links[party]
                    self._due.pop(party, None)
                now = self._clock.monotonic()
                for party, link in sorted(links.items()):
                    if party not in rounds and self._due.get(party, now) <= now:
                        self._due[party] = now + self._config.test_every(party)
                        rounds[party] = asyncio.create_task(self.test(link),
                                                            name=f"link-test {party}")
                now = self._clock.monotonic()
                nearest = min((self._due.get(p, now) for p in links if p not in rounds),
                              default=now + MAX_IDLE_S)
                await asyncio.sleep(min(MAX_IDLE_S, max(0.01, nearest - now)))
        finally:
            await cancel_and_wait(rounds.values(), what="link test round")

    async def close(self) -> None:
        if self._own is not None:
            await self._own.close()

    async def test(self, link: Link) -> LinkHealth:
        """One round: every endpoint of ``link`` tested at once; states updated, changes
        logged and alarmed."""
        health = self.links.get(link.party)
        if health is None:
            health = self.links[link.party] = LinkHealth.new(link.party, link.endpoints,
                                                             self._thresholds)
            await self._clear_gone_endpoints(link)  # also a last run's, before a new offer
        elif list(health.endpoints) != list(link.endpoints):
            health.follow(link.endpoints, self._thresholds)
            await self._clear_gone_endpoints(link)
        current = health.current
        timeout = self._config.test_timeout_seconds
        results = await asyncio.gather(*(self._probe(link, e, timeout)
                                         for e in link.endpoints))
        if self._peers.get(link.party) is None:
            # removed while its endpoints were tested: its alarms went with it (see
            # hotline.links.removal), none is raised again for a link that is gone
            self.links.pop(link.party, None)
            return health
        now = self._clock.now_ms()
        best: float | None = None
        for endpoint, (rtt, error, offset) in zip(link.endpoints, results, strict=True):
            health.endpoints[endpoint].record(Outcome(rtt), now, error)
            if rtt is not None:
                health.answered = True
            if rtt is not None and (best is None or rtt < best):
                best = rtt
                health.clock_offset_ms, health.clock_offset_error_ms = offset
        health.add_sample(Sample(now, self._clock.monotonic(), best))
        # Alarms follow the states *not yet applied*, not this round's changes only: a
        # round whose alarm could not be stored fails the prober, and the restarted one
        # applies it at its first round (the states it recorded are kept across restarts).
        for endpoint in link.endpoints:
            e = health.endpoints[endpoint]
            if e.state != e.alarmed:
                await self._endpoint_changed(link.party, endpoint, e.alarmed, e.state,
                                             e.last_error)
                e.alarmed = e.state
        moved_to = health.current
        if moved_to is not None and current is not None and moved_to != current:
            order = list(link.endpoints)
            how = "failing over" if order.index(moved_to) > order.index(current) \
                else "going back"
            log.warning("link to %s: %s from %s (%s) to %s (%s)", link.party, how, current,
                        health.endpoints[current].state, moved_to,
                        health.endpoints[moved_to].state)
        if health.state != health.alarmed:
            await self._link_changed(link.party, health.alarmed, health)
            health.alarmed = health.state
        return health

    async def _probe(self, link: Link, endpoint: str, limit_s: float
                     ) -> tuple[float | None, str | None, tuple[int | None, int | None]]:
        """(round trip in ms or None if lost, why it was lost, (clock offset, error))."""
        sent_at, sent_mono = self._clock.now_ms(), self._clock.monotonic()
        probe = make_probe(self._me, link.party, endpoint, sent_at, self._keys)
        try:
            status, content = await self._post(endpoint + LINKTEST_PATH,
                                               canonical.encode(probe), limit_s)
            rtt_ms = (self._clock.monotonic() - sent_mono) * 1000
            if status != 200:
                body = content[:300].decode("utf-8", "replace")
                return None, f"HTTP {status}: {body}", (None, None)
            answer = json.loads(content).get("answer")
            checked = verify_answer(answer, link.keys, probe)
        except TimeoutError:
            return None, f"no answer within {limit_s:g} s", (None, None)
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": ")[:300], (None, None)
        except Exception as exc:  # a bad answer (bad-linktest) is a lost test, logged
            log.warning("link test of %s at %s: %s", link.party, endpoint, exc)
            return None, f"{type(exc).__name__}: {exc}".rstrip(": ")[:300], (None, None)
        offset = int(checked.at - (sent_at + rtt_ms / 2))
        return max(rtt_ms, 0.001), None, (offset, int(rtt_ms / 2) + 1)

    async def _clear_gone_endpoints(self, link: Link) -> None:
        """Clear ``endpoint-down`` of every endpoint that is no longer the link's (a new
        offer dropped it): nothing tests it any more, so nothing else would."""
        prefix = f"endpoint-down:{link.party}:"
        for alarm in await self._alarms.standing():
            endpoint = alarm.cause[len(prefix):]
            if alarm.cause.startswith(prefix) and endpoint not in link.endpoints:
                await self._alarms.clear(alarm.cause, by=f"endpoint {endpoint} is no longer "
                                                         f"one of {link.party}'s")

    async def _endpoint_changed(self, party: str, endpoint: str, old: str, new: str,
                                error: str | None) -> None:
        why = f": {error}" if error and new != UP else ""
        log.warning("link to %s: endpoint %s is %s (was %s)%s", party, endpoint, new, old, why)
        cause = f"endpoint-down:{party}:{endpoint}"
        if new == DOWN:
            await self._alarms.raise_(Alarm(
                "endpoint-down", party, f"endpoint {endpoint} of {party} is down{why}"[:1000],
                {"peer": party, "endpoint": endpoint, "error": error}, cause=cause))
        else:  # also after a restart: an alarm of the last run whose cause is over
            await self._alarms.clear(cause, by=f"endpoint {endpoint} is {new}")

    async def _link_changed(self, party: str, old: str, health: LinkHealth) -> None:
        """``link-degraded`` stands while the link is degraded or down, ``link-down``
        while it is down; both are cleared when it is up again. A link that has not
        answered once since this node started is not alarmed as degraded (its peer may
        be starting too), only as down."""
        new = health.state
        log.warning("link to %s is %s (was %s); current endpoint %s", party, new, old,
                    health.current)
        if new == UP:
            for state in (DOWN, DEGRADED):  # also after a restart: the last run's alarms
                await self._alarms.clear(f"link-{state}:{party}",
                                         by=f"the link to {party} is up")
            return
        if new == DEGRADED and old == DOWN:
            await self._alarms.clear(f"link-down:{party}",
                                     by=f"the link to {party} is degraded")
        if new == DOWN or (new == DEGRADED and health.answered):
            await self._alarms.raise_(Alarm(
                f"link-{new}", party,
                f"the link to {party} is {new}: "
                + "; ".join(f"{e.endpoint} {e.state}" for e in health.endpoints.values()),
                {"peer": party, "state": new, "was": old,
                 "endpoints": {e.endpoint: e.state for e in health.endpoints.values()}},
                cause=f"link-{new}:{party}"))
