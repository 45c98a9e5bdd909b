"""The console's browser-facing defences: headers, cookies, CSRF, form parsing.

The console is a cookie-authenticated web app, so every state change must prove it came
from a page the console itself served (the CSRF token) and from its own origin; the
Content-Security-Policy forbids inline script and style, so text a peer sends can never
run as code even if escaping were ever missed.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from hotline.bounds import check_id, log_refused
from hotline.calls.directory import ROLE_RE
from hotline.console.text import NUMERIC_FIELDS, ascii_digits
from hotline.errors import HotlineError, InvalidInput

SESSION_COOKIE = "__Host-hotline-session"
#: Before login there is no session to hold a CSRF token: a random value goes both in
#: this cookie and in the form, and the two must match (double submit).
LOGIN_COOKIE = "__Host-hotline-login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 128 * 1024

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make the browser send Origin: null
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


security_log = logging.getLogger("hotline.security")


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def new_token() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    """``__Host-`` cookies must be Secure, for the whole site and bound to this host;
    browsers accept Secure cookies from ``http://localhost``/``127.0.0.1`` too, anything
    else needs TLS in front of the node (docs/console.md)."""
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="strict")


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(
        str(expected).encode(), str(given).encode())


def check_origin(request: Request) -> None:
    """A state change must come from this console's own origin when the browser says
    where it comes from (every current browser sends ``Origin`` on a POST)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc != host:
        raise HotlineError("bad-origin", "this request came from another site; nothing "
                                         "was changed", status=403)


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (what the console's forms and htmx send).

    Anything else, a body over the limit, a field given twice or a NUL character is
    refused before any handler sees it, so handlers only ever get one string per
    field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HotlineError("bad-form", "the console accepts URL-encoded forms only",
                           status=415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HotlineError("bad-form", "the form is too large", status=413)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise HotlineError("bad-form", "the form could not be read", status=400) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise HotlineError("bad-form", f"the field {key!r} was given twice", status=400)
        if "\x00" in key or "\x00" in value:  # no form has one; PostgreSQL refuses it
            raise InvalidInput(f"form.{key.replace(chr(0), '?')[:40]}",
                               "contains a NUL character")
        # a number typed in another numeral system (٣٨٨٤٥٨) is the same number: the one
        # place every form's numeric fields pass (hotline.console.text.NUMERIC_FIELDS)
        fields[key] = ascii_digits(value) if key in NUMERIC_FIELDS else value
    return fields


def form_field(form: Mapping[str, str], name: str, *, required: bool = True,
           max_len: int = 1000) -> str:
    """``form[name]`` stripped; missing-field (400) when required and empty, bad-form
    (400) when longer than ``max_len`` characters."""
    value = form.get(name, "").strip()
    if required and not value:
        raise HotlineError("missing-field", f"{name} is required", status=400)
    if len(value) > max_len:
        raise HotlineError("bad-form", f"{name} is too long", status=400)
    return value


def csrf_given(request: Request, form: dict[str, str]) -> str | None:
    return request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)



def check_path_ids(request: Request) -> None:
    """Every id in a console path (``call_id``, ``conv_id``, ``message_id``) is one a node
    made, and a ``role`` is a role id as the directory writes them, or the request is
    refused (422, naming it) before it reaches the store."""
    for name, value in request.path_params.items():
        if name == "role":
            if not ROLE_RE.match(str(value)):
                raise InvalidInput("path.role", "is not a role id (a lowercase letter, "
                                                "then up to 31 of a-z, 0-9 and -)")
            continue
        check_id(str(value), f"path.{name}")


def log_refusal(request: Request, exc: HotlineError, who: str | None = None) -> None:
    """The one security-log line of a console request refused (a path id, a form, a
    cross-site POST, a missing token, a role not held...), unless it was written where
    the refusal was decided (``exc.logged``: the authorization guard's)."""
    if exc.logged or not 400 <= exc.status < 500:
        return
    source = request.client.host if request.client else "unknown"
    if isinstance(exc, InvalidInput):
        log_refused(source, request.method, request.url.path, exc)
        return
    security_log.warning("refused console request from %s%s: %s %s: %s: %s", source,
                         f" ({who})" if who else "", request.method,
                         request.url.path[:200], exc.error_id, exc.message[:300])
