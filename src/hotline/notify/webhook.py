"""Webhook channel: one signed HTTP POST per alert.

The request
-----------
``POST <url>`` with the body ``canonical JSON of Alert.as_dict()`` (UTF-8, keys sorted, no
white space; see :mod:`hotline.protocol.canonical`) and these headers:

=======================  ===========================================================
``Content-Type``         ``application/json``
``X-Hotline-Event``      the alert's ``kind`` (``ringing``, ``unanswered``...)
``X-Hotline-Delivery``   the alert's ``key``: the same on every retry of one alert
``X-Hotline-Timestamp``  when this attempt was signed, in whole Unix seconds
``X-Hotline-Signature``  ``sha256=`` + lower-case hex HMAC-SHA256 keyed with the shared
                         secret over ``<X-Hotline-Timestamp> + "." + <raw body bytes>``
=======================  ===========================================================

Any 2xx answer means "accepted"; the body of the answer is ignored. Redirects are not
followed (a signed alert should not wander to a URL nobody configured).

Checking it at the receiver
---------------------------
Call :func:`verify_webhook` with the *raw* body bytes (before any JSON parsing), the
request headers and the current time, and refuse the request (401) if it returns
``False``. The signature covers the timestamp, so an attacker cannot re-date a captured
request, and a request older (or newer) than the tolerance is refused, so one captured
outside that window cannot be replayed. Inside the window a replay is possible, and
retries are *meant* to arrive more than once: receivers dedupe on the alert ``key``.
Take ``key`` and ``kind`` from the verified body, not from the two informational headers
``X-Hotline-Delivery`` and ``X-Hotline-Event``, which the signature does not cover.

Without the library::

    expected = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, sha256).hexdigest()
    ok = hmac.compare_digest(expected, signature) and abs(now - int(ts)) <= 300
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
from collections.abc import AsyncGenerator, Mapping

import httpx

from hotline import __version__
from hotline.clock import Clock, SystemClock
from hotline.errors import ConfigError, HotlineError
from hotline.notify.channels import Alert, ChannelError, http_status_is_permanent, one_line
from hotline.protocol.canonical import encode

EVENT_HEADER = "X-Hotline-Event"
DELIVERY_HEADER = "X-Hotline-Delivery"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
SIGNATURE_HEADER = "X-Hotline-Signature"
SIGNATURE_PREFIX = "sha256="

#: A shorter HMAC key could be found by brute force from one captured request.
MIN_SECRET_BYTES = 16

#: How much of a refusal's body goes into the error: enough to read the receiver's
#: reason, never enough to flood the notifications table or a log line.
_EXCERPT_BYTES = 300


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Hotline-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_webhook(secret: bytes, body: bytes, headers: Mapping[str, str], now_s: float,
                   tolerance_s: float = 300) -> bool:
    """Whether ``body`` with ``headers`` was signed with ``secret`` at most ``tolerance_s``
    seconds away from ``now_s`` (either way, to allow for clock skew).

    ``headers`` may be any mapping; names are matched case-insensitively, since servers
    and frameworks disagree on header case. The signature is compared in constant time so
    the comparison leaks nothing about how close a forgery came.
    """
    if not secret:
        return False
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if stamp is None or signature is None:
        return False
    stamp, signature = stamp.strip(), signature.strip()
    # ASCII digits only: int() would also take "+5", " 5", "5_0" or Arabic-Indic digits.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 15):
        return False
    if not abs(now_s - int(stamp)) <= tolerance_s:  # also False for a NaN now_s
        return False
    if not signature.isascii():
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


class WebhookChannel:
    """POSTs each alert, signed, to one URL.

    Without a ``client`` every attempt opens and closes its own connection: alerts are
    rare, and a channel that owns nothing needs no shutdown. Pass a shared
    ``httpx.AsyncClient`` (which the caller closes) to reuse connections; this channel's
    ``timeout_s`` still bounds each attempt as a whole, whatever the client's settings.
    """

    def __init__(self, name: str, url: str, secret: bytes, timeout_s: float = 5.0,
                 client: httpx.AsyncClient | None = None, *,
                 clock: Clock | None = None) -> None:
        self.name = name
        self._where = _check_url(name, url)
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ConfigError("bad-webhook-secret",
                              f"webhook {name!r}: the secret must be at least "
                              f"{MIN_SECRET_BYTES} bytes",
                              hint="generate one with: python -c 'import secrets; "
                                   "print(secrets.token_hex(32))'")
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s)
                and timeout_s > 0):
            raise ConfigError("bad-timeout",
                              f"webhook {name!r}: timeout must be a positive number of "
                              f"seconds, not {timeout_s!r}")
        self._url = url
        self._secret = secret
        self._timeout_s = float(timeout_s)
        self._client = client
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        # The URL's path or query may itself be a credential: show only where it goes.
        return f"WebhookChannel({self.name!r}, {self._where!r})"

    async def deliver(self, alert: Alert) -> None:
        """One signed POST; returns on 2xx, raises :class:`ChannelError` otherwise."""
        try:
            body = encode(alert.as_dict())
        except HotlineError as exc:
            raise ChannelError(f"{self.name}: alert {alert.key} cannot be encoded: "
                               f"{exc.message}", permanent=True) from None
        stamp = str(self._clock.now_ms() // 1000)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"hotline/{__version__}",
            EVENT_HEADER: alert.kind,
            DELIVERY_HEADER: alert.key,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self._secret, stamp, body),
        }
        try:
            # Whole-attempt deadline: httpx's timeout is per read or write, so a server
            # that trickles a byte at a time would otherwise hold the attempt forever.
            async with asyncio.timeout(self._timeout_s):
                if self._client is not None:
                    status, excerpt = await self._post(self._client, body, headers)
                else:
                    async with httpx.AsyncClient(follow_redirects=False) as client:
                        status, excerpt = await self._post(client, body, headers)
        except TimeoutError:
            raise ChannelError(f"{self.name}: {self._where} gave no answer within "
                               f"{self._timeout_s:g} s", permanent=False) from None
        except httpx.HTTPError as exc:
            detail = one_line(str(exc))
            raise ChannelError(f"{self.name}: {self._where}: {type(exc).__name__}"
                               + (f": {detail}" if detail else ""), permanent=False) from None
        if 200 <= status < 300:
            return
        raise ChannelError(f"{self.name}: {self._where} answered HTTP {status}"
                           + (f": {excerpt}" if excerpt else ""),
                           permanent=http_status_is_permanent(status))

    async def _post(self, client: httpx.AsyncClient, body: bytes,
                    headers: dict[str, str]) -> tuple[int, str]:
        """POST and return the status and, for a failure, the start of the answer."""
        async with client.stream("POST", self._url, content=body, headers=headers,
                                 timeout=self._timeout_s) as response:
            if response.is_success:
                return response.status_code, ""
            return response.status_code, await _excerpt(response)


async def _excerpt(response: httpx.Response) -> str:
    """The start of a refusal's body, read no further than needed."""
    data = b""
    chunks = response.aiter_bytes()
    try:
        async for chunk in chunks:
            data += chunk
            if len(data) >= _EXCERPT_BYTES:
                break
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()  # now, not whenever the abandoned generator is collected
    return one_line(data[:_EXCERPT_BYTES].decode("utf-8", "replace"))


def _check_url(name: str, url: str) -> str:
    """Refuse anything but an absolute http(s) URL; return ``scheme://host:port``, the
    part of it that is safe to show in errors and logs."""
    hint = "give a full URL such as https://alerts.example.org/hotline"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError("bad-webhook-url", f"webhook {name!r}: not a URL ({exc})",
                          hint=hint) from None
    if parsed.scheme not in ("http", "https"):
        raise ConfigError("bad-webhook-url", f"webhook {name!r}: the URL must start with "
                          f"http:// or https://, not {parsed.scheme or 'nothing'!r}",
                          hint=hint)
    if not parsed.host:
        raise ConfigError("bad-webhook-url", f"webhook {name!r}: the URL names no host",
                          hint=hint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}:{port}"
