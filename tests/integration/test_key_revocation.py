"""Key revocation on running nodes (T9): envelopes, receipts and checkpoints under the
revoked key are refused at once; the announcement is kept as evidence and alarmed."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from hotline.protocol import canonical
from hotline.protocol.checkpoint import make_checkpoint
from hotline.protocol.envelope import open_envelope
from hotline.protocol.keys import PartyKeys, PublicKeys
from hotline.protocol.receipt import make_receipt, message_digest
from tests.integration.test_key_rotation import history, hotline, post, texts
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]
CHECKPOINTS = "/federation/v1/checkpoints"


@contextmanager
def receipts_signed_by(node: NodeProcess, signer: PartyKeys, opener: PartyKeys
                       ) -> Iterator[list[int]]:
    """Stand in for ``node`` (stopped) on its port: store nothing, answer every envelope
    with a receipt signed by ``signer``. Yields the list of batch sizes answered."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            results = []
            for raw in body.split(b"\n"):
                obj = canonical.decode(raw)
                digest = message_digest(envelope_id=obj["id"], sender=obj["from"],
                                        recipient=obj["to"], seq=obj["seq"],
                                        type_=obj["type"],
                                        payload=_open(raw, node.party, opener, obj))
                receipt = make_receipt(envelope_id=obj["id"], signer=node.party,
                                       sender=obj["from"], seq=obj["seq"], digest=digest,
                                       at_ms=int(time.time() * 1000), keys=signer)
                results.append({"receipt": receipt.decode(), "duplicate": False})
            answered.append(len(results))
            data = json.dumps({"results": results}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", node.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


#: the senders' public keys, for the stand-in to open what it is sent
_SENDER_KEYS: dict[str, PublicKeys] = {}


def _open(raw: bytes, me: str, keys: PartyKeys, obj: dict[str, Any]) -> dict[str, Any]:
    """The payload of an envelope addressed to ``me``."""
    env = open_envelope(raw, me=me, my_keys=keys,
                        sender_keys=lambda party: {obj["kid"]: _SENDER_KEYS[party]},
                        now_ms=int(obj["ts"]))
    return env.payload


def test_a_revoked_key_is_refused_at_once_for_envelopes_receipts_and_checkpoints(
        make_node: Make) -> None:
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    old = us.private_keys()
    cert = us.dir / f"revocation-cert-{old.public.key_id}.json"
    assert cert.exists()  # made at init, to be kept apart
    us.send("RU-GS", ["before the compromise"])
    wait_until(lambda: texts(ru, "US-JS") == ["before the compromise"], 30,
               what="the first message")
    result = hotline("key", "revoke", "--dir", str(us.dir), "--cert", str(cert), "--json")
    assert result.returncode == 0, result.stderr
    revoked = json.loads(result.stdout)
    assert revoked["kid"] != old.public.key_id
    wait_until(lambda: history(ru, "US-JS")[0].revoked_at is not None, 30,
               what="RU to take the revocation")
    # kept as evidence, logged, alarmed; the new key is the link's
    evidence = ru.query("SELECT kind, envelope FROM evidence WHERE peer = 'US-JS'")
    assert [e.kind for e in evidence] == ["key-revocation"]
    kept = json.loads(bytes(evidence[0].envelope))
    assert kept["cert"]["kid"] == old.public.key_id
    assert kept["new"] == revoked["kid"]
    assert len(ru.query("SELECT idx FROM log_entries WHERE kind = 'key-revocation'")) == 1
    alarms = [a for a in ru.status()["alarms"] if a["kind"] == "key-revoked"]
    assert len(alarms) == 1
    assert revoked["safety_number"] in alarms[0]["message"]
    assert ru.query("SELECT kid FROM links WHERE party = 'US-JS'")[0].kid == revoked["kid"]
    us.send("RU-GS", ["after, under the new key"])
    wait_until(lambda: len(texts(ru, "US-JS")) == 2, 30, what="a message under the new key")

    us.stop()  # from here the test holds the stolen key
    seq = int(ru.query("SELECT recv_next FROM links WHERE party = 'US-JS'")[0].recv_next)
    stored = len(ru.query("SELECT id FROM inbound"))
    # an envelope under the revoked key, whatever time it claims
    lines = len(ru.log_lines("key-revoked"))
    for ts in (int(time.time() * 1000), int(time.time() * 1000) - 60_000):
        refused, _ = post(ru, "US-JS", old, seq, ts=ts)
        assert refused["error"] == "key-revoked", refused
    assert len(ru.log_lines("key-revoked")) == lines + 2  # one line per refusal
    assert len(ru.query("SELECT id FROM inbound")) == stored
    # a checkpoint of US's log signed by the revoked key
    cp = make_checkpoint("US-JS", 1, hashlib.sha256(b"forged").digest(),
                         int(time.time() * 1000), old)
    r = httpx.post(ru.url + CHECKPOINTS, content=canonical.encode(
        {"checkpoint": cp, "from_size": 0, "proof": []}), timeout=30.0)
    assert r.json().get("error") == "key-revoked", r.text
    assert len(ru.log_lines("key-revoked")) == lines + 3
    assert ru.query("SELECT id FROM log_checkpoints WHERE origin = 'US-JS' AND size = 1") == []
    # receipts signed by the revoked key for what RU sends: never taken as delivered
    _SENDER_KEYS["RU-GS"] = ru.public_keys()
    new = us.private_keys()
    ru.send("US-JS", ["is anyone there?"])
    with receipts_signed_by(us, old, new) as answered:
        wait_until(lambda: len(answered) >= 2, 30, what="RU to try twice")
        wait_until(lambda: len(ru.log_lines("refused a receipt from US-JS")) >= 2, 10,
                   what="RU's refusals")
        waiting = ru.query("SELECT delivered_at FROM outbox WHERE peer = 'US-JS' "
                           "ORDER BY seq DESC LIMIT 1")
        assert waiting[0].delivered_at is None
    assert all("key-revoked" in line for line in ru.log_lines("refused a receipt from US-JS"))
