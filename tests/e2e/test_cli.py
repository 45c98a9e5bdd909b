"""The CLI as an operator uses it: real `hotline` processes, real nodes, real sockets."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import PASSPHRASE, NodeProcess, free_port, wait_until


def hotline(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE, **(env or {})}
    result = subprocess.run([sys.executable, "-m", "hotline", *args], input=stdin,
                            capture_output=True, text=True, env=full_env, timeout=120,
                            check=False)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def _init(base: Path, party: str) -> Path:
    node_dir = base / party.lower()
    hotline("init", "--party", party, "--dir", str(node_dir), "--listen",
            f"127.0.0.1:{free_port()}", "--name", f"{party} desk")
    return node_dir


def test_init_creates_a_node_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    node_dir = tmp_path / "us"
    result = hotline("init", "--party", "US-JS", "--dir", str(node_dir), "--listen",
                     "127.0.0.1:7900", "--json")
    info = as_json(result)
    assert info["party"] == "US-JS"
    assert len(info["safety_number"].split()) == 12
    config = (node_dir / "config.toml").read_text()
    assert 'listen = "127.0.0.1:7900"' in config
    assert (node_dir / "hotline.db").exists()
    assert (node_dir / "keys.json").stat().st_mode & 0o777 == 0o600
    assert (node_dir / "operator.token").stat().st_mode & 0o777 == 0o600
    before = (node_dir / "keys.json").read_bytes()
    again = hotline("init", "--party", "US-JS", "--dir", str(node_dir), "--listen",
                    "127.0.0.1:7901", check=False)
    assert again.returncode == 1
    assert "error[node-exists]" in again.stderr
    assert (node_dir / "keys.json").read_bytes() == before


@pytest.mark.parametrize(("args", "error_id"), [
    (["--party", "us js", "--listen", "127.0.0.1:7900"], "bad-option"),
    (["--party", "US-JS", "--listen", "nohost"], "bad-option"),
    (["--party", "US-JS", "--listen", "127.0.0.1:7900", "--endpoint", "ftp://x"], "bad-option"),
    (["--party", "US-JS", "--listen", "127.0.0.1:7900", "--db", "mysql://x/y"], "bad-db-url"),
])
def test_init_with_bad_input_says_why_and_creates_nothing(tmp_path: Path, args: list[str],
                                                           error_id: str) -> None:
    node_dir = tmp_path / "bad"
    result = hotline("init", "--dir", str(node_dir), *args, check=False)
    assert result.returncode == (2 if error_id == "bad-option" else 1), result.stderr
    assert f"error[{error_id}]" in result.stderr
    assert not node_dir.exists() or not any(node_dir.iterdir())


def test_init_without_a_passphrase_is_refused(tmp_path: Path) -> None:
    result = hotline("init", "--party", "US-JS", "--dir", str(tmp_path / "x"), "--listen",
                     "127.0.0.1:7900", env={"HOTLINE_PASSPHRASE": ""}, check=False)
    assert result.returncode == 1
    assert "error[no-passphrase]" in result.stderr


def test_link_send_inbox_status_token_through_the_cli(tmp_path: Path) -> None:
    us, ru = _init(tmp_path, "US-JS"), _init(tmp_path, "RU-GS")
    hotline("link", "offer", "--dir", str(us), "--out", str(tmp_path / "us.offer"))
    offer_ru = hotline("link", "offer", "--dir", str(ru))
    assert "Safety number:" in offer_ru.stderr
    (tmp_path / "ru.offer").write_text(offer_ru.stdout)
    accepted = hotline("link", "accept", "--dir", str(us), str(tmp_path / "ru.offer"), "--yes",
                       "--json")
    assert as_json(accepted)["party"] == "RU-GS"
    hotline("link", "accept", "--dir", str(ru), str(tmp_path / "us.offer"), "--yes")
    links = as_json(hotline("link", "list", "--dir", str(us), "--json"))["links"]
    assert [link["party"] for link in links] == ["RU-GS"]
    assert links[0]["safety_number"] in offer_ru.stderr

    nodes = [NodeProcess.existing(us, "US-JS").start(), NodeProcess.existing(ru, "RU-GS").start()]
    try:
        sent = as_json(hotline("send", "--dir", str(us), "RU-GS", "Calling cgs", "--json"))
        assert sent["messages"][0]["seq"] == 1
        said = hotline("send", "--dir", str(us), "RU-GS", "--stdin",
                       stdin="second\nthird\n\n").stdout
        assert "bulk lane, seq 2..3" in " ".join(said.split()), said

        def inbox() -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = as_json(hotline("inbox", "--dir", str(ru),
                                                             "--json"))["messages"]
            return messages

        messages = wait_until(lambda: len(m := inbox()) == 3 and m, 30, what="3 messages")
        assert [(m["from"], m["seq"], m["text"]) for m in messages] == [
            ("US-JS", 1, "Calling cgs"), ("US-JS", 2, "second"), ("US-JS", 3, "third")]
        assert all(m["received_at"] for m in messages)
        assert {m["lane"] for m in messages} == {"bulk"}
        table = hotline("inbox", "--dir", str(ru)).stdout
        assert "Calling cgs" in table
        assert "bulk 1" in table  # a seq is named with its lane (each numbers from 1)

        status = as_json(hotline("status", "--dir", str(us), "--json"))
        assert status["party"] == "US-JS"
        peer = status["peers"][0]
        assert peer["party"] == "RU-GS"
        assert set(peer) >= {"queued", "in_flight", "delivered", "last_receipt_at",
                             "last_error"}
        assert "RU-GS" in hotline("status", "--dir", str(us)).stdout

        refused = hotline("send", "--dir", str(us), "PL-GS", "hello", check=False)
        assert refused.returncode == 1
        assert "error[no-link]" in refused.stderr

        old_token = (us / "operator.token").read_text().strip()
        hotline("token", "--dir", str(us))
        url = nodes[0].url + "/api/v1/status"
        assert httpx.get(url, headers={"authorization": f"Bearer {old_token}"}).status_code \
            == 401
        assert hotline("status", "--dir", str(us), "--json").returncode == 0
    finally:
        for node in nodes:
            node.stop()


def test_commands_against_a_stopped_node_say_so(tmp_path: Path) -> None:
    us = _init(tmp_path, "US-JS")
    result = hotline("status", "--dir", str(us), check=False)
    assert result.returncode == 1
    assert "error[node-not-running]" in result.stderr
    assert "hotline serve" in result.stderr


def test_a_missing_node_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = hotline("status", "--dir", str(tmp_path / "nowhere"), check=False)
    assert result.returncode == 1
    assert "error[no-node]" in result.stderr


def test_serve_with_a_wrong_passphrase_refuses_to_start(tmp_path: Path) -> None:
    us = _init(tmp_path, "US-JS")
    result = hotline("serve", "--dir", str(us), env={"HOTLINE_PASSPHRASE": "wrong"},
                     check=False)
    assert result.returncode == 1
    assert "error[wrong-passphrase]" in result.stderr


def test_demo_check_links_four_parties_and_refuses_ru_to_pl(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(8)]
    start = next(p for p in ports if all(_port_free(p + i) for i in range(4)))
    began = datetime.now(UTC).isoformat()
    result = hotline("demo", "--dir", str(tmp_path / "demo"), "--port", str(start), "--check")
    ended = datetime.now(UTC).isoformat()
    checks = [line for line in result.stdout.splitlines() if " -> " in line]
    assert sum(line.endswith(" delivered") for line in checks) == 8
    assert "NOT delivered" not in result.stdout
    assert "refused as expected: no-link" in result.stdout
    # the scenario's call escalated to the duty officer, who answered; every step verified
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    for step in ("ringing cgs signed by RU-GS (verified)",
                 "ringing cgs-1d signed by RU-GS (verified)",
                 "ringing ccp-do signed by RU-GS (verified)",
                 "answered cinc by cinc-1 signed by UA-GS (verified)",
                 "answered cgs by cgs-1 signed by PL-GS (verified)"):
        assert step in lines, step
    # the duty officer who answered is the one the rotation had on watch: 12-hour watches
    # among four, so which one depends on the time of day (a hand-over may fall in the run)
    answered = [line for line in lines if line.startswith("answered ccp-do by ")]
    assert len(answered) == 1, lines
    on_watch = {json.loads(hotline("schedule", "who", "ccp-do", "--at", at, "--json", "--dir",
                                   str(tmp_path / "demo" / "ru")).stdout)["holders"][0]
                for at in (began, ended)}
    assert answered[0] in {f"answered ccp-do by {officer} signed by RU-GS (verified)"
                           for officer in on_watch}
    assert "NOT verified" not in result.stdout
    for key in ("us", "ru", "ua", "pl"):
        assert (tmp_path / "demo" / key / "hotline.db").exists()
    _demo_incident_rows(tmp_path / "demo", lines)
    _demo_console_logins_work(tmp_path / "demo", result.stdout)


def _demo_incident_rows(base: Path, lines: list[str]) -> None:
    """The outcome table's incident rows, and every member holding the same signed
    timeline (read from each node's own database, the nodes stopped)."""
    def row(what: str) -> str:
        found = [line for line in lines if line.startswith(f"│ {what} │")]
        assert len(found) == 1, (what, lines)
        return found[0]
    assert "9 entries, same at every member" in row("incident timeline")
    # the US attribution query, answered "unknown" by RU's officer on watch in time
    assert "answered: unknown by ccp-" in row("attribution query to RU-GS")
    assert "delivered to UA-GS, US-JS" in row("incident notification")
    assert "Повідомлення про інцидент" in row("UA-GS reads it (uk)")
    assert "Przewodów impact" in row("incident")
    timelines = {}
    for key in ("pl", "us", "ua", "ru"):
        db = sqlite3.connect(base / key / "hotline.db")
        try:
            timelines[key] = [(t, s) for t, s in db.execute(
                "SELECT e.id, e.statement FROM incident_entries e JOIN incidents i "
                "ON i.id = e.incident_id WHERE i.title = 'Przewodów impact' "
                "ORDER BY e.at, e.author, e.n")]
        finally:
            db.close()
    assert len(timelines["pl"]) == 9
    assert timelines["us"] == timelines["pl"] == timelines["ua"]
    assert timelines["ru"] == []  # not a member: it holds nothing of the incident
    types = [json.loads(s)["type"] for _id, s in timelines["pl"]]
    assert types == ["opened", "joined", "joined", "notification", "link", "assessment",
                     "assessment", "claim", "link"]
    kinds = [json.loads(s).get("link_kind") for _id, s in timelines["pl"]]
    assert kinds.count("query") == 1


def _demo_console_logins_work(base: Path, stdout: str) -> None:
    """Every scenario operator got a console account; the printed password and TOTP
    secret are the ones stored (checked against the node's own account row)."""
    from hotline.accounts.passwords import verify_password
    from hotline.accounts.totp import code_at, matching_step
    from hotline.scenario import on_duty_operators

    path = base / "console-logins.json"
    assert path.stat().st_mode & 0o777 == 0o600
    logins = json.loads(path.read_text())
    assert {(x["party"], x["operator"]) for x in logins} >= {
        ("US-JS", "nmcc-1"), ("RU-GS", "ccp-1"), ("UA-GS", "cinc-1"), ("PL-GS", "opsdo-1")}
    assert len(logins) >= sum(len(on_duty_operators(p)) for p in
                              ("US-JS", "RU-GS", "UA-GS", "PL-GS"))
    for login in logins:
        assert login["totp_secret"] in stdout
        assert login["password"] in stdout
    key = {"US-JS": "us", "RU-GS": "ru", "UA-GS": "ua", "PL-GS": "pl"}
    for login in logins[:3]:
        db = sqlite3.connect(base / key[login["party"]] / "hotline.db")
        try:
            stored_hash, secret = db.execute(
                "SELECT password_hash, totp_secret FROM operator_accounts WHERE operator = ?",
                (login["operator"],)).fetchone()
        finally:
            db.close()
        assert verify_password(login["password"], stored_hash)
        assert secret == login["totp_secret"]
        now = time.time()
        assert matching_step(secret, code_at(login["totp_secret"], now), now, None)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
