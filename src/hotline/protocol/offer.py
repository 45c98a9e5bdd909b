"""Link offers: how two parties introduce themselves out of band.

An offer is self-signed with the key it announces (proving possession of the private
key); its authenticity comes from people comparing the safety number by voice. A link
exists only once both sides have accepted each other's offer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hotline.errors import LinkError
from hotline.protocol import canonical
from hotline.protocol.envelope import PARTY_RE
from hotline.protocol.keys import PartyKeys, PublicKeys, b64e, safety_number
from hotline.protocol.signing import sign_object, verify_object

DOMAIN = "hotline/link-offer/v1"
FIELDS = frozenset({"v", "type", "party", "name", "sign", "enc", "endpoints", "at", "sig"})
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,120}\Z")
MAX_ENDPOINTS = 8


@dataclass(frozen=True)
class LinkOffer:
    party: str
    name: str
    keys: PublicKeys
    endpoints: tuple[str, ...]
    at: int
    raw: bytes

    @property
    def safety_number(self) -> str:
        return safety_number(self.party, self.keys.sign_bytes, self.keys.enc_bytes)


#: the longest endpoint URL an offer or config.toml may name
MAX_ENDPOINT_CHARS = 2048


def check_endpoint(url: str) -> str:
    """An endpoint is an absolute http(s) URL with a host and no query or fragment, of
    at most :data:`MAX_ENDPOINT_CHARS` printable characters: no white space or control
    character (``urlsplit`` drops tabs and line breaks before it parses, so a URL it
    calls well-formed may still hold them, and a NUL or an escape would reach the
    HTTP client, the logs and the operator's terminal)."""
    if len(url) > MAX_ENDPOINT_CHARS or any(c.isspace() or not c.isprintable() for c in url):
        raise LinkError("bad-endpoint", f"endpoint {url[:80]!r} is not an http(s) URL with a "
                        f"host (at most {MAX_ENDPOINT_CHARS} characters, no white space or "
                        "control characters)", hint="for example http://198.51.100.7:7100")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _ = parts.port  # raises ValueError when out of range
    except ValueError:
        hostname = None
    if hostname is None or parts.scheme not in ("http", "https") or parts.query \
            or parts.fragment or parts.username is not None:
        raise LinkError("bad-endpoint", f"endpoint {url!r} is not an http(s) URL with a host",
                        hint="for example http://198.51.100.7:7100")
    return url.rstrip("/")


def make_offer(*, party: str, name: str, keys: PartyKeys, endpoints: list[str],
               at_ms: int) -> bytes:
    pub = keys.public

    obj = {"v": 1, "type": "link-offer", "party": party, "name": name,
           "sign": b64e(pub.sign_bytes), "enc": b64e(pub.enc_bytes),
           "endpoints": [check_endpoint(e) for e in endpoints], "at": at_ms}
    return canonical.encode(sign_object(DOMAIN, obj, keys))


def _offer_error(message: str) -> LinkError:
    return LinkError("bad-offer", message, hint="ask the peer for a fresh `hotline link offer`")


def parse_offer(data: bytes) -> LinkOffer:
    """Verify an offer's shape and self-signature; raise ``bad-offer`` if it fails."""
    try:
        obj: Any = canonical.decode(data.strip())
    except Exception as exc:
        raise _offer_error(f"offer is not canonical JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != FIELDS or obj["type"] != "link-offer" \
            or obj["v"] != 1 or type(obj["v"]) is not int:
        raise _offer_error("offer has the wrong fields or version")
    party, name, endpoints = obj["party"], obj["name"], obj["endpoints"]
    if not isinstance(party, str) or not PARTY_RE.fullmatch(party):
        raise _offer_error(f"party id {party!r} is malformed")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise _offer_error("party name is missing or malformed")
    if not isinstance(endpoints, list) or not 1 <= len(endpoints) <= MAX_ENDPOINTS \
            or not all(isinstance(e, str) for e in endpoints):
        raise _offer_error(f"offer must list 1 to {MAX_ENDPOINTS} endpoints")
    if type(obj["at"]) is not int:
        raise _offer_error("offer time is not an integer")
    try:
        keys = PublicKeys.from_b64(obj["sign"], obj["enc"])
    except Exception:
        raise _offer_error("offer keys are malformed") from None
    if not verify_object(DOMAIN, obj, keys):
        raise _offer_error("offer signature does not verify: it was altered or forged")
    try:
        checked = tuple(check_endpoint(e) for e in endpoints)
    except LinkError as exc:
        raise _offer_error(exc.message) from None
    return LinkOffer(party=party, name=name, keys=keys, endpoints=checked, at=obj["at"],
                     raw=canonical.encode(obj))



