"""Time-based one-time codes (RFC 6238, the flavour every authenticator app speaks:
HMAC-SHA1, 6 digits, 30-second steps) and the QR codes that enrol them.

The codes come from ``cryptography``'s HOTP/TOTP; this module adds what a login needs on
top: a tolerance of one step either way for clocks and slow typing, and the number of
the matched step, so the caller can store it and refuse the same code (or an older one)
next time — a code seen over someone's shoulder is then useless.
"""

from __future__ import annotations

import base64
import hmac
import io
import os

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.hotp import HOTP
from cryptography.hazmat.primitives.twofactor.totp import TOTP

STEP = 30
DIGITS = 6
WINDOW = 1
SECRET_BYTES = 20  # 160 bits, as RFC 4226 recommends


def new_secret() -> str:
    """A fresh random secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(os.urandom(SECRET_BYTES)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)


def _code(key: bytes, step: int) -> str:
    # TOTP is HOTP over the step number (RFC 6238 §4); asking HOTP for a given step lets
    # the window below name the step it matched.
    # HMAC-SHA1 is what authenticator apps implement; HMAC does not rely on SHA-1's
    # collision resistance, which is what is broken.
    return HOTP(key, DIGITS, SHA1()).generate(step).decode("ascii")  # noqa: S303


def step_at(unix_seconds: float) -> int:
    return int(unix_seconds // STEP)


def code_at(secret: str, unix_seconds: float) -> str:
    """The code an authenticator app shows at ``unix_seconds``."""
    return _code(_key(secret), step_at(unix_seconds))


def matching_step(secret: str, code: str, unix_seconds: float,
                  last_step: int | None) -> int | None:
    """The time step within ±:data:`WINDOW` of now whose code is ``code``, or None.

    Steps at or before ``last_step`` (the last code accepted) are never matched, so a
    code works once. Anything but exactly :data:`DIGITS` ASCII digits matches nothing.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    key = _key(secret)
    now = step_at(unix_seconds)
    for step in range(now - WINDOW, now + WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(_code(key, step), code):
            return step
    return None


def provisioning_uri(secret: str, operator: str, party: str) -> str:
    """The ``otpauth://`` URI an authenticator app enrols from (usually as a QR code)."""
    totp = TOTP(_key(secret), DIGITS, SHA1(), STEP)  # noqa: S303 - see _code
    return totp.get_provisioning_uri(operator, issuer=f"Hotline {party}")


def qr_svg(uri: str, *, title: str = "Authenticator enrolment code") -> str:
    """The QR code of ``uri`` as inline SVG markup. Colours are presentation attributes,
    never ``style=``, because the console's Content-Security-Policy forbids inline styles."""
    import segno  # enrolment only: not loaded by an idle node (about 4 MB)

    buffer = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(
        buffer, kind="svg", xmldecl=False, svgns=True, title=title, scale=5, dark="#000",
        light="#fff", omitsize=False, nl=False)
    return buffer.getvalue().decode("utf-8")


def qr_terminal(uri: str) -> str:
    """The QR code of ``uri`` drawn with block characters, for a terminal."""
    import segno  # see qr_svg

    buffer = io.StringIO()
    segno.make(uri, error="m", micro=False).terminal(out=buffer, compact=True)
    return buffer.getvalue()
