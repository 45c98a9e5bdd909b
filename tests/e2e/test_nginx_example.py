"""``examples/nginx/hotline.conf`` in front of a real node: a real nginx (Debian's, run as
a child process with its own prefix on free ports, a certificate from a CA made here),
through which a peer delivers a federation message and an operator logs in to the
console and holds its live event stream open (issue 15, item 15).

nginx must be installed (``apt-get install nginx-light``; ``.ci/run`` does it): the test
fails, never skips, without it."""

from __future__ import annotations

import datetime
import ipaddress
import re
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hotline.scenario import EXAMPLES
from tests.calls import apply_scenario
from tests.integration.test_console_http import PASSWORD, _log_in, _login_form
from tests.nodes import NodeProcess, free_port, link, wait_until

Make = Callable[..., NodeProcess]
SPOOFED = "203.0.113.9"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(base: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``localhost`` and 127.0.0.1 signed by it:
    ``(ca.pem, server.pem, server.key)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hotline test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True,
              crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([
                  x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                  critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                  ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = base / "ca.pem", base / "server.pem", base / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem(key))
    paths[2].chmod(0o600)
    return paths


def site_config(node_port: int, port: int, cert: Path, key: Path) -> str:
    """The example, its placeholders (node address, port, certificate) filled in: each
    must be found exactly once, so the test breaks if the example changes shape."""
    text = (EXAMPLES / "nginx" / "hotline.conf").read_text(encoding="utf-8")
    for old, new in (("server 127.0.0.1:7100;", f"server 127.0.0.1:{node_port};"),
                     ("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
                     ("listen [::]:443 ssl http2;\n", ""),
                     ("/etc/ssl/hotline/fullchain.pem", str(cert)),
                     ("/etc/ssl/hotline/privkey.pem", str(key))):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int, int], tuple[str, Path, Path]]]:
    """Start nginx on ``port`` in front of a node's port: ``(https base URL, CA file,
    access log)``."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is not installed: apt-get install nginx-light"
    procs: list[subprocess.Popen[bytes]] = []

    def start(node_port: int, port: int) -> tuple[str, Path, Path]:
        base = tmp_path / "nginx"
        (base / "temp").mkdir(parents=True)
        ca, cert, key = make_certificates(base)
        (base / "hotline.conf").write_text(site_config(node_port, port, cert, key))
        temp = base / "temp"
        (base / "nginx.conf").write_text(
            f"pid {base / 'nginx.pid'};\nerror_log {base / 'error.log'} info;\n"
            "events { worker_connections 64; }\n"
            f"http {{\n  access_log {base / 'access.log'};\n"
            f"  client_body_temp_path {temp / 'body'};\n"
            f"  proxy_temp_path {temp / 'proxy'};\n"
            f"  fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"  uwsgi_temp_path {temp / 'uwsgi'};\n"
            f"  scgi_temp_path {temp / 'scgi'};\n"
            f"  include {base / 'hotline.conf'};\n}}\n")
        proc = subprocess.Popen(
            [binary, "-p", str(base), "-e", str(base / "error.log"),
             "-c", str(base / "nginx.conf"), "-g", "daemon off; master_process off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"https://localhost:{port}"
        context = ssl.create_default_context(cafile=str(ca))

        def up() -> bool:  # answering over TLS (502 while the node is not up yet)
            assert proc.poll() is None, (base / "error.log").read_text()
            try:
                httpx.get(url + "/healthz", verify=context, timeout=2)
            except httpx.TransportError:
                return False
            return True
        wait_until(up, 30, what="nginx in front of the node")
        return url, ca, base / "access.log"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_federation_and_the_console_through_the_example_nginx_configuration(
        make_sqlite_node: Make, nginx: Callable[[int, int], tuple[str, Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hotline.accounts.offline import add_operator

    proxy_port = free_port()
    us = make_sqlite_node("US-JS")
    ru = make_sqlite_node("RU-GS", endpoints=[f"https://localhost:{proxy_port}"])
    link(us, ru)  # US-JS knows RU-GS only by its https endpoint: nginx
    apply_scenario(us)
    apply_scenario(ru)
    secret = add_operator(ru.dir, "ccp-1", PASSWORD).secret
    url, ca, access_log = nginx(ru.port, proxy_port)  # on the port the offer named
    assert url == f"https://localhost:{proxy_port}"
    # US-JS's node trusts the CA as a real deployment's system store would
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    ru.start()
    us.start()

    text = f"through nginx {secrets.token_hex(4)}"
    us.send("RU-GS", [text])
    wait_until(lambda: any(m["text"] == text for m in ru.inbox()), 30,
               what="the message through nginx")
    assert re.search(r'"POST /federation/v1/\S+ HTTP/1\.1" 200', access_log.read_text())

    context = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(base_url=url, verify=context, timeout=10,
                      headers={"X-Forwarded-For": SPOOFED}) as client:
        token = _login_form(client)
        wrong = client.post("/login", data={"csrf": token, "operator": "ccp-1",
                                            "password": "wrong", "code": "000000"})
        assert wrong.status_code == 401
        _log_in(client, secret, "ccp-1")
        board = client.get("/board")
        assert board.status_code == 200, board.text
        # the live stream is passed on as it comes, not held in nginx's buffers
        with client.stream("GET", "/console/events") as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            assert next(events.iter_lines()) == ": connected"
    # the node logs the address nginx saw, not the one the client claimed
    logins = [row.entry for row in ru.query(
        "SELECT entry FROM log_entries WHERE kind = 'login' ORDER BY idx")]
    assert len(logins) == 2
    assert all('"remote":"127.0.0.1"' in e.replace(" ", "") for e in logins), logins
    assert not any(SPOOFED in e for e in logins)
    # nginx writes a request's access-log line when the request ends: for the stream,
    # once it notices the client went away (at the latest on the node's next 15 s ping)
    wait_until(lambda: "/console/events" in access_log.read_text(), 60,
               what="the event stream's line in nginx's access log")


def test_metrics_through_the_example_nginx_is_not_local(
        make_sqlite_node: Make, nginx: Callable[[int, int], tuple[str, Path, Path]]) -> None:
    """nginx on the node's host connects from 127.0.0.1: ``/metrics`` through it is
    refused without a token (one security-log line), open with the metrics token, and
    open directly from loopback."""
    node = make_sqlite_node("RU-GS")
    node.configure("metrics", token_file="metrics.token")
    token = secrets.token_urlsafe(32)
    (node.dir / "metrics.token").write_text(token + "\n")
    (node.dir / "metrics.token").chmod(0o600)  # a secret: readable by others is refused
    url, ca, _ = nginx(node.port, free_port())
    node.start()
    context = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(base_url=url, verify=context, timeout=10) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "metrics-forbidden"
        wait_until(lambda: len(node.log_lines("metrics-forbidden")) == 1, 10,
                   what="the refusal's security-log line")
        opened = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert opened.status_code == 200, opened.text
        assert "hotline_link_state" in opened.text
    assert httpx.get(node.url + "/metrics", timeout=10).status_code == 200
    assert len(node.log_lines("metrics-forbidden")) == 1
