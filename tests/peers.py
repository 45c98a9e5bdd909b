"""Acting as a linked peer or as a logged-in operator against real nodes, for the
authorization and hostile-input tests: one validly sealed envelope from a party whose
keys the test holds, and a console session logged in with password and TOTP code."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from hotline.accounts.totp import code_at
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys
from tests.nodes import NodeProcess

ENVELOPES = "/federation/v1/envelopes"


def send_sealed(target: NodeProcess, sender: str, keys: PartyKeys, seq: int, type_: str,
                payload: dict[str, Any]) -> str:
    """``sender`` (linked to ``target``, signing with ``keys``) sends it one envelope of
    ``type_`` with sequence number ``seq``; asserts it was received (a receipt: stored as
    an envelope, whatever its effect) and returns its id."""
    head = Header(id=new_envelope_id(), sender=sender, recipient=target.party,
                  kid=keys.public.key_id, seq=seq, ts=time.time_ns() // 1_000_000,
                  type=type_)
    raw = seal(head, payload, keys, target.public_keys())
    r = httpx.post(target.url + ENVELOPES, content=raw, timeout=30.0,
                   headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert "receipt" in r.json()["results"][0], r.text
    return head.id


def console_session(node: NodeProcess, operator: str, secret: str, password: str
                    ) -> httpx.Client:
    """A console client logged in as ``operator`` (TOTP ``secret``): the log-in form's
    token, then the session cookie."""
    client = httpx.Client(base_url=node.url, headers={"Origin": node.url}, timeout=30.0)
    page = client.get("/login?lang=en")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    client.headers["Cookie"] = f"__Host-hotline-login={token.group(1)}"
    r = client.post("/login", data={"csrf": token.group(1), "operator": operator,
                                    "password": password, "code": code_at(secret, time.time())})
    assert r.status_code == 303, r.text
    session = re.search(r"__Host-hotline-session=([^;]+)", r.headers["set-cookie"])
    assert session
    client.headers["Cookie"] = f"__Host-hotline-session={session.group(1)}"
    return client
