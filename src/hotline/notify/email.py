"""E-mail channel: one plain-text message per alert over SMTP.

The message is built so that people and machines can both use it: the subject is the
alert's one-line summary, the body its labelled facts followed by the alert as JSON, and
``Message-ID`` is derived from the alert key, so a retry is the *same* message to mail
clients and archives (many drop the duplicate) and to anyone grepping for it.
``Auto-Submitted: auto-generated`` (RFC 3834) keeps vacation responders from answering
an alarm.

smtplib blocks, so the whole conversation runs in a worker thread (of ``executor`` when
given, so that one hanging server can only use up its own channel's threads); the event
loop that carries the calls never waits on a mail server. The attempt has one deadline,
``timeout_s``, spread over connect, TLS, login and sending. A cancelled ``deliver``
stops waiting at once, but its thread runs on until that deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import smtplib
import ssl
import time
from concurrent.futures import Executor
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate

from hotline.errors import ConfigError
from hotline.notify.channels import Alert, ChannelError, one_line

#: An address we can put in an envelope and a header without quoting: no white space,
#: controls or RFC 5322 specials outside the single "@".
_ADDRESS = re.compile(r'[^\s@<>()\[\],;:"\\\x00-\x1f\x7f]+@[^\s@<>()\[\],;:"\\\x00-\x1f\x7f]+')


def message_id(key: str, sender: str) -> str:
    """The ``Message-ID`` of the alert with ``key`` sent from ``sender``: the same on every
    retry. The key is hashed because it may hold characters a Message-ID cannot."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    return f"<hotline.{digest}@{sender.rpartition('@')[2]}>"


class EmailChannel:
    """Sends each alert to a fixed list of recipients through one SMTP server.

    With ``starttls`` the connection is upgraded before anything else is said; the
    server's certificate is checked against the system's CAs, or against
    ``ssl_context`` when given (a private CA). Logging in is allowed only over STARTTLS:
    a password must never cross the network in clear.
    """

    def __init__(self, name: str, host: str, port: int, sender: str,
                 recipients: tuple[str, ...], timeout_s: float = 10.0, starttls: bool = False,
                 username: str | None = None, password: str | None = None, *,
                 ssl_context: ssl.SSLContext | None = None,
                 executor: Executor | None = None) -> None:
        self.name = name
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise ConfigError("bad-smtp-host", f"e-mail {name!r}: {host!r} is not a host name")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError("bad-smtp-port", f"e-mail {name!r}: port {port!r} is not 1-65535")
        _check_address(name, "sender", sender)
        wanted = tuple(dict.fromkeys(recipients))  # drop repeats, keep the order
        if not wanted:
            raise ConfigError("no-recipients", f"e-mail {name!r}: no recipients",
                              hint="an alert nobody receives is worse than no channel")
        for address in wanted:
            _check_address(name, "recipient", address)
        if (username is None) != (password is None):
            raise ConfigError("bad-smtp-login",
                              f"e-mail {name!r}: give both a user name and a password, or "
                              "neither")
        if username is not None and not starttls:
            raise ConfigError("bad-smtp-login",
                              f"e-mail {name!r}: logging in needs STARTTLS",
                              hint="a password must not cross the network in clear; "
                                   "enable starttls")
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s)
                and timeout_s > 0):
            raise ConfigError("bad-timeout",
                              f"e-mail {name!r}: timeout must be a positive number of "
                              f"seconds, not {timeout_s!r}")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = wanted
        self._timeout_s = float(timeout_s)
        self._starttls = starttls
        self._username = username
        self._password = password
        self._ssl_context = ssl_context
        self._executor = executor

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, {self.host}:{self.port}, {len(self.recipients)} " \
               "recipients)"

    def message(self, alert: Alert) -> EmailMessage:
        """The message ``deliver`` sends for ``alert`` (exposed so it can be inspected)."""
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["Subject"] = alert.subject()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(alert.key, self.sender)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Hotline-Event"] = alert.kind
        msg["X-Hotline-Delivery"] = alert.key
        as_json = json.dumps(alert.as_dict(), indent=2, sort_keys=True, ensure_ascii=False)
        # Quoted-printable keeps the message 7-bit, so no server can mangle it, and an
        # ASCII alert still reads plainly in the raw source.
        msg.set_content(f"{alert.text()}\n-- \nThe alert as JSON:\n{as_json}\n",
                        cte="quoted-printable")
        return msg

    async def deliver(self, alert: Alert) -> None:
        """Send one message; returns once the server accepted it for every recipient."""
        msg = self.message(alert)
        where = f"{self.name}: SMTP {self.host}:{self.port}"
        try:
            if self._executor is None:
                refused = await asyncio.to_thread(self._send, msg)
            else:
                refused = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._send, msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refusal(where, exc.recipients, all_refused=True) from None
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(f"{where}: {_reply(exc.smtp_code, exc.smtp_error)}",
                               permanent=500 <= exc.smtp_code < 600) from None
        except smtplib.SMTPNotSupportedError as exc:
            # STARTTLS or AUTH that the server does not offer: a mismatch of configs
            # that no retry mends.
            raise ChannelError(f"{where}: {one_line(str(exc))}", permanent=True) from None
        except TimeoutError:
            raise ChannelError(f"{where}: no answer within {self._timeout_s:g} s",
                               permanent=False) from None
        except OSError as exc:  # refused, reset, DNS, TLS, disconnected (SMTPException too)
            detail = one_line(str(exc))
            raise ChannelError(f"{where}: {type(exc).__name__}"
                               + (f": {detail}" if detail else ""), permanent=False) from None
        if refused:
            raise _refusal(where, refused, all_refused=False)

    def _send(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """The blocking SMTP conversation (runs in a worker thread); returns the
        recipients the server refused while accepting the message for the others."""
        deadline = time.monotonic() + self._timeout_s
        # Connecting through the constructor also records the host name that STARTTLS
        # checks the certificate against.
        smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout_s)
        try:

            def budget() -> None:
                """Give the next step only what is left of the attempt's deadline."""
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if smtp.sock is not None:
                    smtp.sock.settimeout(left)

            budget()
            smtp.ehlo()
            if self._starttls:
                budget()
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                budget()
                smtp.ehlo()
            if self._username is not None and self._password is not None:
                budget()
                smtp.login(self._username, self._password)
            budget()
            refused = smtp.send_message(msg, self.sender, list(self.recipients))
            with contextlib.suppress(OSError):
                smtp.quit()  # the message is accepted: a failed goodbye must not resend it
            return refused
        finally:
            smtp.close()


def _check_address(name: str, what: str, address: object) -> None:
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise ConfigError("bad-email-address",
                          f"e-mail {name!r}: {what} {address!r} is not a plain address",
                          hint="write it as local@domain, without a display name")


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {one_line(raw)}".strip()


def _refusal(where: str, refused: dict[str, tuple[int, bytes]],
             all_refused: bool) -> ChannelError:
    """Refused recipients: permanent only if every refusal was a 5xx reply. When some
    recipients did accept, the message says so; a retry re-sends to them, and their
    mail clients see the same Message-ID."""
    parts = "; ".join(f"{address}: {_reply(code, text)}"
                      for address, (code, text) in sorted(refused.items()))
    scope = "all recipients" if all_refused else "some recipients (the others accepted)"
    return ChannelError(f"{where}: refused {scope}: {parts}",
                        permanent=all(500 <= code < 600 for code, _ in refused.values()))
