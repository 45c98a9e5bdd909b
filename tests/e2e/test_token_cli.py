"""``hotline token issue|list|revoke`` as an administrator uses them, against a running
node on SQLite and PostgreSQL: a token bound to one operator acts only as them, in the
roles the directory gives them; it is stored hashed; revoked, it is refused at once; the
token file stays the administrator's, and bare ``hotline token`` still rotates it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.calls import apply_scenario
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess, wait_until

Make = Callable[..., NodeProcess]


@pytest.fixture
def node(make_node: Make) -> NodeProcess:
    node = make_node("US-JS")
    apply_scenario(node)
    return node.start()


def _api(node: NodeProcess, token: str, method: str, path: str, **kwargs: Any
         ) -> httpx.Response:
    return httpx.request(method, node.url + path, timeout=30.0,
                         headers={"authorization": f"Bearer {token}"}, **kwargs)


def test_issue_use_list_and_revoke(node: NodeProcess) -> None:
    issued = as_json(hotline("token", "issue", "--operator", "nmcc-1", "--dir",
                             str(node.dir), "--json"))
    token, token_id = issued["token"], issued["id"]
    assert issued["operator"] == "nmcc-1"
    secret = token.split(".", 1)[1]

    # stored hashed: the secret is nowhere in the database, its SHA-256 is
    rows = node.query("SELECT id, operator, secret_sha256 FROM api_tokens")
    assert [(r.id, r.operator) for r in rows] == [(token_id, "nmcc-1")]
    assert rows[0].secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    if node.config.db.startswith("sqlite"):
        for path in node.dir.glob("hotline.db*"):
            assert secret.encode() not in path.read_bytes()
    else:
        dump = node.query("SELECT CAST(api_tokens AS TEXT) FROM api_tokens")
        assert secret not in str(dump)

    # it acts as nmcc-1, in nmcc-1's roles only, and for nobody else
    assert _api(node, token, "GET", "/api/v1/status").status_code == 200
    r = _api(node, token, "POST", "/api/v1/calls", json={"to": "cgs@RU-GS", "as": "cjcs"})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "role-not-held"
    r = _api(node, token, "POST", "/api/v1/presence", json={"operator": "cjcs-1"})
    assert r.status_code == 403
    assert _api(node, token, "POST", "/api/v1/presence",
                json={"operator": "nmcc-1"}).status_code == 204
    # it cannot rewrite the directory, nor change another operator's duty
    r = _api(node, token, "PUT", "/api/v1/directory", json={"toml": "x = 1"})
    assert r.status_code == 403
    assert r.json()["error"] == "admin-only"
    assert node.log_lines("refused operator nmcc-1 (token:" + token_id)
    r = _api(node, token, "POST", "/api/v1/roster",
             json={"operator": "cjcs-1", "role": "cjcs", "status": "off-duty"})
    assert r.status_code == 403
    assert r.json()["error"] == "operator-mismatch"
    # but it may give up (or take) its own watch: an override, logged as by nmcc-1
    r = _api(node, token, "POST", "/api/v1/roster",
             json={"operator": "nmcc-1", "role": "nmcc-do", "status": "off-duty",
                   "from_ms": 4_000_000_000_000, "until_ms": 4_000_000_003_600})
    assert r.status_code == 200, r.text
    assert r.json()["override"]["created_by"] == "nmcc-1"
    assert r.json()["override"]["unavailable"] is True
    assert node.log_lines(f"api POST /api/v1/presence for operator nmcc-1 (token:{token_id})")

    listed = as_json(hotline("token", "list", "--dir", str(node.dir), "--json"))["tokens"]
    assert [(t["id"], t["operator"], t["revoked_at"]) for t in listed] == \
        [(token_id, "nmcc-1", None)]
    assert listed[0]["last_used_at"] is not None
    plain = hotline("token", "list", "--dir", str(node.dir), env={"COLUMNS": "200"}).stdout
    assert token_id in plain
    assert secret not in plain
    assert secret[:12] not in plain

    before = len(node.log_lines("refused unauthenticated request"))
    hotline("token", "revoke", token_id, "--dir", str(node.dir))
    assert _api(node, token, "GET", "/api/v1/status").status_code == 401
    wait_until(lambda: len(node.log_lines("refused unauthenticated request")) == before + 1,
               10, what="one security line for the revoked token")
    listed = as_json(hotline("token", "list", "--dir", str(node.dir), "--json"))["tokens"]
    assert listed[0]["revoked_at"] is not None
    # a token for someone who is not in the directory is never issued
    result = hotline("token", "issue", "--operator", "nobody", "--dir", str(node.dir),
                     check=False)
    assert result.returncode == 1
    assert "no-operator" in result.stderr
    result = hotline("token", "revoke", "0123456789abcdef", "--dir", str(node.dir),
                     check=False)
    assert result.returncode == 1
    assert "no-token" in result.stderr


def test_the_token_file_stays_the_administrators(node: NodeProcess) -> None:
    """Bare ``hotline token`` rotates the file; the administrator may still act for any
    operator and write the roster, and operator tokens live on."""
    issued = as_json(hotline("token", "issue", "--operator", "nmcc-1", "--dir",
                             str(node.dir), "--json"))
    old = node.token
    hotline("token", "--dir", str(node.dir))
    assert node.token != old
    assert _api(node, old, "GET", "/api/v1/status").status_code == 401
    r = node.api("POST", "/api/v1/roster",
                 json={"operator": "cjcs-1", "role": "cjcs", "status": "on-duty"})
    assert r.status_code == 200, r.text
    assert _api(node, issued["token"], "GET", "/api/v1/status").status_code == 200


def test_an_operator_removed_from_the_directory_loses_their_tokens(node: NodeProcess
                                                                   ) -> None:
    """An operator id taken out of the directory takes its tokens with it: when the id
    comes back (perhaps for another person), the old tokens stay revoked."""
    from hotline.scenario import directory_toml
    from tests.calls import apply_toml

    token = as_json(hotline("token", "issue", "--operator", "nmcc-1", "--dir",
                            str(node.dir), "--json"))["token"]
    assert _api(node, token, "GET", "/api/v1/status").status_code == 200
    original = directory_toml("US-JS")
    apply_toml(node, original.replace('"nmcc-1"', '"nmcc-9"'))
    assert _api(node, token, "GET", "/api/v1/status").status_code == 401
    apply_toml(node, original)
    assert _api(node, token, "GET", "/api/v1/status").status_code == 401
    listed = as_json(hotline("token", "list", "--dir", str(node.dir), "--json"))["tokens"]
    assert [t["revoked_at"] is not None for t in listed] == [True]
    assert node.query("SELECT COUNT(*) AS n FROM log_entries WHERE kind = 'api-token'"
                      )[0].n == 2  # issued, then revoked with the directory change
