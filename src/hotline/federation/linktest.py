"""Answering link tests: ``POST /federation/v1/linktest`` (docs/protocol.md §7.2).

A linked peer's signed probe gets this node's signed answer at once; nothing is stored
and no state changes, so a replayed probe only earns another answer to a probe its
sender made. Anything else is refused with a stable error id and exactly one line on
``hotline.security``: a malformed or oversized body (``bad-linktest``), an unlinked
sender (``unknown-sender``), a key the sender never announced (``unknown-key``) or may no
longer use (the key-history refusals), a forged or altered signature (``bad-linktest``),
a probe for another party (``bad-linktest``) or one signed outside the skew window
(``timestamp-out-of-window``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hotline.clock import Clock
from hotline.errors import HotlineError
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys
from hotline.protocol.linktest import (
    BAD_LINKTEST,
    MAX_PROBE_BYTES,
    make_answer,
    parse_probe,
    verify_probe,
)

security_log = logging.getLogger("hotline.security")


@dataclass(frozen=True)
class Answered:
    status: int
    body: dict[str, Any]


class LinkTestAnswerer:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, clock: Clock,
                 skew_ms: int) -> None:
        self._me = me
        self._keys = keys
        self._peers = peers
        self._clock = clock
        self._skew_ms = skew_ms

    def answer(self, raw: bytes, source: str) -> Answered:
        """The HTTP status and JSON body answering the probe ``raw`` from ``source``."""
        try:
            signed = self._answer(raw)
        except HotlineError as exc:
            security_log.warning("refused a link test from %s: %s: %s", source, exc.error_id,
                                 exc.message)
            return Answered(exc.status, dict(exc.to_dict()))
        return Answered(200, {"answer": signed})

    def _answer(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > MAX_PROBE_BYTES:
            raise HotlineError(BAD_LINKTEST, f"link test: body exceeds {MAX_PROBE_BYTES} "
                                             "bytes", status=413)
        try:
            obj = canonical.decode(raw)
        except HotlineError as exc:
            raise HotlineError(BAD_LINKTEST, f"link test: {exc.message}") from None
        checked = parse_probe(obj)
        sender = checked["from"]
        link = self._peers.get(sender)
        if link is None:
            raise HotlineError("unknown-sender", f"{sender} is not a linked party",
                               status=403)
        public = (self._peers.keys_by_id(sender) or {}).get(checked["kid"])
        if public is None:
            public = link.keys if link.keys.key_id == checked["kid"] else None
        if public is None:
            raise HotlineError("unknown-key", f"party {sender} has no key with id "
                                              f"{checked['kid']}", status=401)
        probe = verify_probe(checked, public, sender=sender, recipient=self._me)
        refusal = self._peers.refusal(sender, probe.kid, probe.at)
        if refusal is not None:
            raise HotlineError(refusal.error_id, f"link test: {refusal.message}",
                               status=refusal.status)
        now = self._clock.now_ms()
        if abs(probe.at - now) > self._skew_ms:
            raise HotlineError("timestamp-out-of-window",
                               f"link test time is {(probe.at - now) / 1000:+.1f} s from "
                               f"ours; the window is +-{self._skew_ms / 1000:.0f} s")
        return make_answer(probe, now, self._keys)
