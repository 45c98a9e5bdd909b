"""Notification channels against real local servers: an HTTP server that receives the
webhook and an SMTP server (aiosmtpd) that receives the e-mail. Nothing is mocked; each
failure class (refusal, server error, nobody listening, nobody answering) is produced by
a real server or a real socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hotline.errors import ConfigError
from hotline.notify.channels import Alert, ChannelError
from hotline.notify.email import EmailChannel, message_id
from hotline.notify.webhook import WebhookChannel, sign, verify_webhook
from hotline.protocol.canonical import encode

SECRET = b"0123456789abcdef-webhook-secret"
NOW_MS = 1_764_115_200_123
SENDER = "hotline@us-js.example"
RECIPIENTS = ("duty-officer@us-js.example", "watch-floor@us-js.example")

ALERT = Alert(kind="ringing", party="US-JS", call_id="call-7f3a", caller="nmcc-do@US-JS",
              callee="cgs@RU-GS", step=2, roles=("cgs-1d",), operators=("op-ana", "op-li"),
              reason=None, at_ms=NOW_MS, key="call-7f3a/ring-2")


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


# --- webhook -----------------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


#: path -> (status, body) the sink answers with
ANSWERS: dict[str, tuple[int, bytes]] = {
    "/ok": (204, b""),
    "/accepted": (202, b'{"queued":true}'),
    "/moved": (302, b""),
    "/bad": (400, b'{"error":"unknown-subscription"}'),
    "/gone": (404, b"no such hook"),
    "/request-timeout": (408, b""),
    "/busy": (429, b"slow down"),
    "/fail": (500, b"database is down"),
    "/unavailable": (503, b""),
    "/huge": (500, b"x" * 1_000_000),
}


class WebhookSink:
    """A real HTTP/1.1 server on a free loopback port, in a thread. It records every POST
    before answering, so once ``deliver`` returns the request is already in ``received``.
    ``/hang`` never answers until the test ends."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.received.append(Received(self.path, dict(self.headers.items()), body))
                if self.path == "/hang":
                    sink.release.wait(30)
                    self.close_connection = True
                    return
                status, payload = ANSWERS[self.path]
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()  # joins the handler threads (block_on_close)
        self.thread.join(10)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink()
    try:
        yield server
    finally:
        server.close()


def webhook(sink: WebhookSink, path: str = "/ok", timeout_s: float = 5.0,
            clock: FixedClock | None = None) -> WebhookChannel:
    return WebhookChannel("ops-hook", sink.url + path, SECRET, timeout_s=timeout_s,
                          clock=clock or FixedClock(NOW_MS))


async def test_webhook_posts_the_signed_canonical_alert(sink: WebhookSink) -> None:
    await webhook(sink).deliver(ALERT)

    [got] = sink.received
    assert got.path == "/ok"
    assert got.body == encode(ALERT.as_dict())
    assert json.loads(got.body) == {
        "kind": "ringing", "party": "US-JS", "call_id": "call-7f3a",
        "caller": "nmcc-do@US-JS", "callee": "cgs@RU-GS", "step": 2, "roles": ["cgs-1d"],
        "operators": ["op-ana", "op-li"], "reason": None, "at_ms": NOW_MS,
        "key": "call-7f3a/ring-2"}
    headers = {name.lower(): value for name, value in got.headers.items()}
    stamp = str(NOW_MS // 1000)
    assert headers["content-type"] == "application/json"
    assert headers["x-hotline-event"] == "ringing"
    assert headers["x-hotline-delivery"] == "call-7f3a/ring-2"
    assert headers["x-hotline-timestamp"] == stamp
    assert headers["x-hotline-signature"] == sign(SECRET, stamp, got.body)
    assert headers["x-hotline-signature"].startswith("sha256=")
    assert len(headers["x-hotline-signature"]) == len("sha256=") + 64


async def test_verify_webhook_accepts_the_real_request_and_nothing_altered(
        sink: WebhookSink) -> None:
    await webhook(sink).deliver(ALERT)
    [got] = sink.received
    now = NOW_MS // 1000

    assert verify_webhook(SECRET, got.body, got.headers, now)
    lowered = {name.lower(): value for name, value in got.headers.items()}
    assert verify_webhook(SECRET, got.body, lowered, now)
    assert verify_webhook(SECRET, got.body, httpx.Headers(got.headers), now + 300)
    assert verify_webhook(SECRET, got.body, got.headers, now - 300)

    tampered = got.body.replace(b'"step":2', b'"step":3')
    assert tampered != got.body
    assert not verify_webhook(SECRET, tampered, got.headers, now)
    assert not verify_webhook(SECRET, got.body + b" ", got.headers, now)
    assert not verify_webhook(b"another-secret-of-enough-bytes", got.body, got.headers, now)
    assert not verify_webhook(b"", got.body, got.headers, now)
    assert not verify_webhook(SECRET, got.body, got.headers, now + 301)  # replayed late
    assert not verify_webhook(SECRET, got.body, got.headers, now - 301)  # from the future
    assert not verify_webhook(SECRET, got.body, got.headers, now + 61, tolerance_s=60)

    redated = {**lowered, "x-hotline-timestamp": str(now + 10)}
    assert not verify_webhook(SECRET, got.body, redated, now)
    for bad_stamp in ("", "+" + str(now), f" {now}x", "١٧٦٤١١٥٢٠٠"):
        assert not verify_webhook(SECRET, got.body,
                                  {**lowered, "x-hotline-timestamp": bad_stamp}, now)
    for bad_signature in ("", "sha256=", lowered["x-hotline-signature"].upper(),
                          "sha1=" + lowered["x-hotline-signature"][7:], "sha256=é"):
        assert not verify_webhook(SECRET, got.body,
                                  {**lowered, "x-hotline-signature": bad_signature}, now)
    for missing in ("x-hotline-timestamp", "x-hotline-signature"):
        partial = {k: v for k, v in lowered.items() if k != missing}
        assert not verify_webhook(SECRET, got.body, partial, now)


async def test_a_retry_is_the_same_delivery_signed_afresh(sink: WebhookSink) -> None:
    clock = FixedClock(NOW_MS)
    channel = webhook(sink, clock=clock)
    await channel.deliver(ALERT)
    clock.ms += 90_000
    await channel.deliver(ALERT)

    first, second = sink.received
    assert first.body == second.body
    assert first.headers["X-Hotline-Delivery"] == second.headers["X-Hotline-Delivery"]
    assert int(second.headers["X-Hotline-Timestamp"]) \
        == int(first.headers["X-Hotline-Timestamp"]) + 90
    assert verify_webhook(SECRET, second.body, second.headers, clock.ms // 1000)


async def test_webhook_signs_with_the_system_clock_by_default(sink: WebhookSink) -> None:
    await WebhookChannel("ops-hook", sink.url + "/accepted", SECRET).deliver(ALERT)
    [got] = sink.received
    assert verify_webhook(SECRET, got.body, got.headers, time.time(), tolerance_s=10)


async def test_webhook_reuses_a_shared_client_and_leaves_it_open(sink: WebhookSink) -> None:
    async with httpx.AsyncClient() as client:
        channel = WebhookChannel("ops-hook", sink.url + "/ok", SECRET, client=client,
                                 clock=FixedClock(NOW_MS))
        await channel.deliver(ALERT)
        await channel.deliver(replace(ALERT, kind="answered", key="call-7f3a/answered"))
        assert not client.is_closed
    assert [r.headers["X-Hotline-Event"] for r in sink.received] == ["ringing", "answered"]


@pytest.mark.parametrize(("path", "status", "permanent"), [
    ("/bad", 400, True),
    ("/gone", 404, True),
    ("/request-timeout", 408, False),
    ("/busy", 429, False),
    ("/fail", 500, False),
    ("/unavailable", 503, False),
    ("/moved", 302, False),
])
async def test_webhook_refusals_say_whether_a_retry_can_help(
        sink: WebhookSink, path: str, status: int, permanent: bool) -> None:
    with pytest.raises(ChannelError) as caught:
        await webhook(sink, path).deliver(ALERT)
    assert caught.value.permanent is permanent
    assert f"HTTP {status}" in caught.value.message
    assert caught.value.message.startswith("ops-hook: http://127.0.0.1:")
    assert len(sink.received) == 1  # one attempt, never a retry of its own


async def test_webhook_error_quotes_the_receivers_reason_briefly(sink: WebhookSink) -> None:
    with pytest.raises(ChannelError) as bad:
        await webhook(sink, "/bad").deliver(ALERT)
    assert "unknown-subscription" in bad.value.message
    with pytest.raises(ChannelError) as huge:
        await webhook(sink, "/huge").deliver(ALERT)
    assert huge.value.permanent is False
    assert len(huge.value.message) < 400


async def test_webhook_error_does_not_reveal_the_url_path(sink: WebhookSink) -> None:
    channel = WebhookChannel("ops-hook", sink.url + "/fail?token=s3cr3t", SECRET)
    with pytest.raises(ChannelError) as caught:
        await channel.deliver(ALERT)
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in repr(channel)


async def test_an_alert_without_a_canonical_encoding_is_refused_permanently(
        sink: WebhookSink) -> None:
    with pytest.raises(ChannelError) as caught:
        await webhook(sink).deliver(replace(ALERT, reason="NUL \x00 inside"))
    assert caught.value.permanent is True
    assert sink.received == []


async def test_webhook_to_a_refusing_port_is_transient(closed_port: int) -> None:
    channel = WebhookChannel("ops-hook", f"http://127.0.0.1:{closed_port}/hook", SECRET)
    with pytest.raises(ChannelError) as caught:
        await channel.deliver(ALERT)
    assert caught.value.permanent is False
    assert "ConnectError" in caught.value.message


async def test_webhook_gives_up_on_a_server_that_never_answers(sink: WebhookSink) -> None:
    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        await webhook(sink, "/hang", timeout_s=0.3).deliver(ALERT)
    assert caught.value.permanent is False
    assert time.monotonic() - started < 5
    assert len(sink.received) == 1


@pytest.mark.parametrize(("url", "secret", "timeout_s", "error_id"), [
    ("ftp://hooks.example/x", SECRET, 5.0, "bad-webhook-url"),
    ("hooks.example/x", SECRET, 5.0, "bad-webhook-url"),
    ("https://", SECRET, 5.0, "bad-webhook-url"),
    ("http://[::1/x", SECRET, 5.0, "bad-webhook-url"),
    ("https://hooks.example/x", b"short", 5.0, "bad-webhook-secret"),
    ("https://hooks.example/x", SECRET, 0, "bad-timeout"),
    ("https://hooks.example/x", SECRET, float("nan"), "bad-timeout"),
])
def test_webhook_configuration_is_checked_up_front(url: str, secret: bytes, timeout_s: float,
                                                   error_id: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookChannel("ops-hook", url, secret, timeout_s=timeout_s)
    assert caught.value.error_id == error_id


# --- e-mail --------------------------------------------------------------------------------

@dataclass
class Mailbox:
    """aiosmtpd handler: keeps accepted messages, answers RCPT and DATA as told."""

    messages: list[Envelope] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 queued"
    logins: list[LoginPassword] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.messages.append(envelope)
        return self.data_reply

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (b"hotline", b"pa55word")
        if ok:
            self.logins.append(auth_data)
        # handled=False: aiosmtpd itself answers a failure with 535
        return AuthResult(success=ok, handled=False)


class LoopbackController(Controller):
    """aiosmtpd's threaded controller on a loopback socket bound in advance, so the port
    is free for sure (aiosmtpd itself wants a fixed port number)."""

    def __init__(self, handler: Mailbox, **smtp_options: Any) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1],
                         server_hostname="mx.test", **smtp_options)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = LoopbackController(mailbox)
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


def mailer(port: int, **options: Any) -> EmailChannel:
    return EmailChannel("ops-mail", "127.0.0.1", port, SENDER, RECIPIENTS, **options)


def parse(envelope: Envelope) -> email.message.EmailMessage:
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def body_of(message: email.message.EmailMessage) -> str:
    """The decoded text, with the wire's CRLF line ends as the alert wrote them."""
    content = message.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


async def test_email_arrives_with_subject_recipients_body_and_headers(
        smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    await mailer(port).deliver(ALERT)

    [envelope] = mailbox.messages
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == list(RECIPIENTS)
    message = parse(envelope)
    assert message["Subject"] == ALERT.subject() \
        == "CALL for cgs@RU-GS from nmcc-do@US-JS — step 2, ringing cgs-1d"
    assert message["From"] == SENDER
    assert [a.addr_spec for a in message["To"].addresses] == list(RECIPIENTS)
    assert message["Message-ID"] == message_id(ALERT.key, SENDER)
    assert message["Message-ID"].endswith("@us-js.example>")
    assert message["X-Hotline-Delivery"] == ALERT.key
    assert message["X-Hotline-Event"] == "ringing"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    assert message.get_content_type() == "text/plain"
    body = body_of(message)
    assert body.startswith(ALERT.text())
    assert "Roles:      cgs-1d" in body
    assert json.loads(body.split("The alert as JSON:\n", 1)[1]) == ALERT.as_dict()


async def test_a_retried_email_is_recognisably_the_same_message(
        smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    channel = mailer(port)
    await channel.deliver(ALERT)
    await channel.deliver(ALERT)
    await channel.deliver(replace(ALERT, kind="answered", key="call-7f3a/answered"))
    ids = [parse(e)["Message-ID"] for e in mailbox.messages]
    assert ids[0] == ids[1] != ids[2]


async def test_hostile_alert_text_cannot_add_mail_headers(
        smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    hostile = replace(ALERT, caller="x@EV-IL\r\nBcc: victim@elsewhere.example",
                      reason="line one\nline two", kind="declined")
    await mailer(port).deliver(hostile)
    [envelope] = mailbox.messages
    assert envelope.rcpt_tos == list(RECIPIENTS)
    message = parse(envelope)
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
    assert message["Subject"] == hostile.subject()
    assert json.loads(body_of(message).split("The alert as JSON:\n", 1)[1]) \
        == hostile.as_dict()


@pytest.mark.parametrize(("reply", "permanent"), [
    ("550 5.7.1 message refused as spam", True),
    ("554 5.6.0 no", True),
    ("451 4.3.0 try again later", False),
])
async def test_email_refused_at_data_says_whether_a_retry_can_help(
        smtp_server: tuple[Mailbox, int], reply: str, permanent: bool) -> None:
    mailbox, port = smtp_server
    mailbox.data_reply = reply
    with pytest.raises(ChannelError) as caught:
        await mailer(port).deliver(ALERT)
    assert caught.value.permanent is permanent
    assert reply.split()[0] in caught.value.message
    assert caught.value.message.startswith(f"ops-mail: SMTP 127.0.0.1:{port}: ")


async def test_email_with_every_recipient_refused_550_is_permanent(
        smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    mailbox.refuse = {address: "550 5.1.1 no such user" for address in RECIPIENTS}
    with pytest.raises(ChannelError) as caught:
        await mailer(port).deliver(ALERT)
    assert caught.value.permanent is True
    assert "all recipients" in caught.value.message
    assert mailbox.messages == []


async def test_email_with_one_recipient_refused_reports_it_after_the_others_got_it(
        smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    mailbox.refuse = {RECIPIENTS[1]: "550 5.1.1 no such user"}
    with pytest.raises(ChannelError) as caught:
        await mailer(port).deliver(ALERT)
    assert caught.value.permanent is True
    assert RECIPIENTS[1] in caught.value.message
    assert "the others accepted" in caught.value.message
    assert [e.rcpt_tos for e in mailbox.messages] == [[RECIPIENTS[0]]]

    mailbox.refuse = {RECIPIENTS[1]: "450 4.2.1 mailbox busy"}
    with pytest.raises(ChannelError) as busy:
        await mailer(port).deliver(ALERT)
    assert busy.value.permanent is False


async def test_email_to_a_refusing_port_is_transient(closed_port: int) -> None:
    with pytest.raises(ChannelError) as caught:
        await mailer(closed_port).deliver(ALERT)
    assert caught.value.permanent is False
    assert "ConnectionRefusedError" in caught.value.message


async def test_email_gives_up_on_a_server_that_never_greets(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        await mailer(silent_port, timeout_s=0.3).deliver(ALERT)
    assert caught.value.permanent is False
    assert time.monotonic() - started < 5


async def test_email_does_not_block_the_event_loop(silent_port: int) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(ChannelError):
            await mailer(silent_port, timeout_s=0.5).deliver(ALERT)
    finally:
        ticker.cancel()
    assert ticks >= 10  # the loop kept running while the SMTP thread waited


# --- e-mail over STARTTLS with login ----------------------------------------------------

@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1 and contexts that serve and trust it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotline test mx")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return Tls(server=server, client=ssl.create_default_context(cafile=str(cert_path)))


@pytest.fixture
def tls_smtp_server(tls: Tls) -> Iterator[tuple[Mailbox, int]]:
    """A server that insists on STARTTLS before anything, and on login over TLS."""
    mailbox = Mailbox()
    controller = LoopbackController(mailbox, tls_context=tls.server, require_starttls=True,
                                    auth_required=True, authenticator=mailbox.authenticate)
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


async def test_email_over_starttls_with_login(tls: Tls,
                                              tls_smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = tls_smtp_server
    await mailer(port, starttls=True, username="hotline", password="pa55word",
                 ssl_context=tls.client).deliver(ALERT)
    assert mailbox.logins == [(b"hotline", b"pa55word")]
    [envelope] = mailbox.messages
    assert parse(envelope)["X-Hotline-Delivery"] == ALERT.key


async def test_email_login_refused_is_permanent(tls: Tls,
                                                tls_smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = tls_smtp_server
    with pytest.raises(ChannelError) as caught:
        await mailer(port, starttls=True, username="hotline", password="wrong",
                     ssl_context=tls.client).deliver(ALERT)
    assert caught.value.permanent is True
    assert "535" in caught.value.message
    assert mailbox.messages == []


async def test_email_checks_the_server_certificate(tls_smtp_server: tuple[Mailbox, int],
                                                   ) -> None:
    mailbox, port = tls_smtp_server
    with pytest.raises(ChannelError) as caught:  # system CAs do not know our test CA
        await mailer(port, starttls=True, username="hotline",
                     password="pa55word").deliver(ALERT)
    assert caught.value.permanent is False
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert mailbox.logins == []
    assert mailbox.messages == []


async def test_email_starttls_against_a_server_without_it_is_permanent(
        smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    with pytest.raises(ChannelError) as caught:
        await mailer(port, starttls=True).deliver(ALERT)
    assert caught.value.permanent is True
    assert "STARTTLS" in caught.value.message
    assert mailbox.messages == []


@pytest.mark.parametrize(("options", "error_id"), [
    ({"recipients": ()}, "no-recipients"),
    ({"recipients": ("not-an-address",)}, "bad-email-address"),
    ({"recipients": ("a@b.example\r\nBcc: c@d.example",)}, "bad-email-address"),
    ({"recipients": ("Duty Officer <duty@us-js.example>",)}, "bad-email-address"),
    ({"sender": "hotline"}, "bad-email-address"),
    ({"host": ""}, "bad-smtp-host"),
    ({"port": 0}, "bad-smtp-port"),
    ({"port": 70000}, "bad-smtp-port"),
    ({"username": "hotline", "password": "pa55word"}, "bad-smtp-login"),
    ({"username": "hotline", "starttls": True}, "bad-smtp-login"),
    ({"timeout_s": -1.0}, "bad-timeout"),
])
def test_email_configuration_is_checked_up_front(options: dict[str, Any],
                                                 error_id: str) -> None:
    settings: dict[str, Any] = {"name": "ops-mail", "host": "127.0.0.1", "port": 25,
                                "sender": SENDER, "recipients": RECIPIENTS, **options}
    with pytest.raises(ConfigError) as caught:
        EmailChannel(**settings)
    assert caught.value.error_id == error_id


def test_email_recipients_are_deduplicated_in_order() -> None:
    channel = EmailChannel("ops-mail", "127.0.0.1", 25, SENDER,
                           (RECIPIENTS[1], RECIPIENTS[0], RECIPIENTS[1]))
    assert channel.recipients == (RECIPIENTS[1], RECIPIENTS[0])


# --- the alert itself ---------------------------------------------------------------------

def test_alert_subjects_read_as_short_english() -> None:
    assert replace(ALERT, kind="unanswered", roles=("cgs-1d", "cgs-2d"), step=3,
                   reason="nobody picked up").subject() \
        == "UNANSWERED call for cgs@RU-GS from nmcc-do@US-JS — step 3, no answer from " \
           "cgs-1d + cgs-2d, nobody picked up"
    assert replace(ALERT, kind="answered", roles=(), operators=("op-ana",)).subject() \
        == "ANSWERED call for cgs@RU-GS from nmcc-do@US-JS — step 2, answered by op-ana"
    assert replace(ALERT, kind="undeliverable", step=None, roles=(),
                   reason="no route to RU-GS").subject() \
        == "UNDELIVERABLE call for cgs@RU-GS from nmcc-do@US-JS — no route to RU-GS"
    assert len(replace(ALERT, reason="x" * 1000, kind="declined").subject()) <= 200


@pytest.mark.parametrize("key", ["", "has space", "new\nline", "é", "k" * 201])
def test_alert_key_must_be_header_safe(key: str) -> None:
    with pytest.raises(ValueError, match="alert key"):
        replace(ALERT, key=key)
