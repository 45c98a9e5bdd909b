"""``hotline demo`` tells the story and, with ``hotline serve``, behaves like a service.

Real processes throughout: the demo's four ``hotline serve`` children on real ports,
signals sent with ``os.kill``, the directory lock taken by a real ``serve``. Each node
writes its pid into ``DIR/.lock`` while it holds the lock, which is how the tests find
the demo's children without trusting the demo to report them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.nodes import PASSPHRASE, NodeProcess, free_port, wait_until

KEYS = ("us", "ru", "ua", "pl")


def _hotline(*args: str, env: dict[str, str] | None = None, timeout: float = 300
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline", *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE, **(env or {})})


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _four_free_ports() -> int:
    return wait_until(lambda: next((p for p in (free_port() for _ in range(8))
                                    if p < 65530 and all(_free(p + i) for i in range(4))),
                                   None), 10, what="four free ports in a row")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _lock_pid(node_dir: Path) -> int | None:
    try:
        text = (node_dir / ".lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The summary table: expected outcome -> (met, detail's first line)."""
    table = stdout.split("\nSummary\n", 1)[1]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 3 and cells[0]:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_demo_exit_tells_the_story_meets_every_outcome_and_removes_its_directory(
        tmp_path: Path) -> None:
    port = _four_free_ports()
    result = _hotline("demo", "--speed", "600", "--port", str(port), "--exit",
                      env={"TMPDIR": str(tmp_path), "COLUMNS": "100"})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = [" ".join(line.split()) for line in out.splitlines()]
    # the parties and their roles, titles first
    assert "The parties and their roles (from each node's directory):" in out
    for title in ("Chief of the General Staff (cgs)",
                  "First Deputy Chief of the General Staff (cgs-1d)",
                  "Duty officer, Central Command Post (ccp-do)", "Commander-in-Chief (cinc)",
                  "Operations duty officer (ops-do)"):
        assert title in out, title
    # PL's notification as each recipient reads it, and the signed receipts
    assert "US-JS reads it (en): Incident notification" in lines
    assert "UA-GS reads it (uk): Повідомлення про інцидент" in lines
    assert "Place Przewodów (50.47° N, 23.93° E)" in lines
    assert any(line.startswith("PL-GS holds a signed “delivered” receipt from UA-GS and "
                               "US-JS") for line in lines)
    # the US call, step by step from RU-GS's signed states
    story = [line for line in lines if line.startswith(("ringing the ", "the Chief",
                                                        "the First", "answered by "))]
    assert story[:4] == [
        "ringing the Chief of the General Staff: no one holding the role is on duty.",
        "the Chief of the General Staff is not on duty, so the call rings the First Deputy "
        "Chief of the General Staff.",
        "ringing the First Deputy Chief of the General Staff: no one holding the role is on "
        "duty.",
        "the First Deputy Chief of the General Staff is not on duty, so the call rings the "
        "Duty officer, Central Command Post."], story
    officer = re.fullmatch(r"ringing the Duty officer, Central Command Post: (ccp-\d) on "
                           r"duty\.", story[4])
    assert officer is not None, story
    assert f"answered by {officer[1]}, Duty officer, Central Command Post." in story
    assert f"answered ccp-do by {officer[1]} signed by RU-GS (verified)" in lines
    # what each signed state proves, once each
    for start in ("“delivered” is RU-GS's node signing that the call reached it",
                  "“ringing” is RU-GS signing which desk it alerted",
                  "“signed by RU-GS (verified)” means the caller's node checked"):
        assert sum(line.startswith(start) for line in lines) == 1, start
    # the summary: every expected outcome met, log verify on every node among them
    rows = _rows(out)
    for what in ("scenario call to cgs@RU-GS", "escalation cgs, cgs-1d, ccp-do",
                 "RU-GS's steps signed, verified", "conversation, one message each way",
                 "call to cinc@UA-GS", "call to cgs@PL-GS",
                 "incident", "incident timeline", "incident notification",
                 "every link, both ways", "RU-GS to PL-GS refused",
                 "log verify US-JS", "log verify RU-GS", "log verify UA-GS",
                 "log verify PL-GS"):
        assert rows.get(what, ("missing",))[0] == "yes", (what, rows)
    assert all(met == "yes" for met, _detail in rows.values()), rows
    assert rows["scenario call to cgs@RU-GS"][1].startswith(f"answered by {officer[1]}")
    assert rows["log verify RU-GS"][1].startswith("log OK:")
    assert f"All {len(rows)} expected outcomes met." in out
    # the directory it made itself (its passphrase, keys and databases) is gone
    assert not list(tmp_path.glob("hotline-demo-*")), list(tmp_path.iterdir())


@pytest.fixture
def demo_run(tmp_path: Path) -> Iterator[tuple[Path, int, list[subprocess.Popen[bytes]]]]:
    """Where a demo runs (its directory and first port), and a list to put it in: killed
    with its children at the end whatever the test did."""
    procs: list[subprocess.Popen[bytes]] = []
    base = tmp_path / "demo"
    yield base, _four_free_ports(), procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for key in KEYS:
        pid = _lock_pid(base / key)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("signum", "when"), [
    (signal.SIGTERM, "exploring"), (signal.SIGHUP, "replaying"),
    (signal.SIGKILL, "replaying")], ids=["SIGTERM-exploring", "SIGHUP-replaying",
                                          "SIGKILL-replaying"])
def test_a_signal_to_the_demo_leaves_no_node_running(
        demo_run: tuple[Path, int, list[subprocess.Popen[bytes]]], signum: int,
        when: str) -> None:
    base, port, procs = demo_run
    log = base.parent / "demo.out"
    with log.open("wb") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "hotline", "demo", "--dir", str(base), "--port", str(port),
             "--speed", "600"], stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "100"})
    procs.append(demo)

    def nodes() -> list[int] | None:
        assert demo.poll() is None, log.read_text()
        pids = [_lock_pid(base / key) for key in KEYS]
        return [p for p in pids if p is not None] if None not in pids else None

    children = wait_until(nodes, 60, what="the demo's four nodes")
    if when == "exploring":
        def explorable() -> bool:
            assert demo.poll() is None, log.read_text()
            return "Ctrl-C" in log.read_text()
        wait_until(explorable, 120, what="the demo to finish replaying")
    else:
        wait_until(lambda: all(httpx.get(f"http://127.0.0.1:{port + i}/healthz",
                                         timeout=1.0).status_code == 200
                               if not _free(port + i) else False for i in range(4)),
                   60, what="the nodes to answer")
    assert all(_alive(pid) for pid in children)
    os.kill(demo.pid, signum)
    code = demo.wait(timeout=60)
    wait_until(lambda: not any(_alive(pid) for pid in children), 30,
               what="every node to stop")
    wait_until(lambda: all(_free(port + i) for i in range(4)), 30,
               what="the ports to be free")
    if signum != signal.SIGKILL:
        assert code == 0, log.read_text()
        assert "Stopping 4 node(s)" in log.read_text()
    else:
        assert code == -signal.SIGKILL


def test_demo_on_a_busy_port_says_so_and_starts_nothing(tmp_path: Path) -> None:
    port = _four_free_ports()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + 2))
        busy.listen()
        result = _hotline("demo", "--dir", str(tmp_path / "demo"), "--port", str(port),
                          "--exit", timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert re.search(rf"error\[port-in-use\]: port {port + 2} is in use; try --port "
                         r"\d+", result.stderr), result.stderr
        assert not (tmp_path / "demo").exists()
        assert "Hotline demo in" not in result.stdout
        # without --dir: no directory made either
        again = _hotline("demo", "--port", str(port), env={"TMPDIR": str(tmp_path)},
                         timeout=60)
        assert again.returncode == 2
        assert "error[port-in-use]" in again.stderr
        assert not list(tmp_path.glob("hotline-demo-*"))


def test_demo_refuses_a_directory_a_node_runs_on(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "demo" / "us", "US-JS", None).start()
    try:
        result = _hotline("demo", "--dir", str(tmp_path / "demo"), "--port",
                          str(_four_free_ports()), "--exit", timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"error[node-running]: a node already runs on {tmp_path / 'demo' / 'us'}" \
            in " ".join(result.stderr.split())
        assert not (tmp_path / "demo" / "ru").exists()
        assert node.proc is not None
        assert node.proc.poll() is None
    finally:
        node.stop()


def test_a_second_serve_on_one_directory_is_refused_before_touching_anything(
        tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "us", "US-JS", None).start()
    try:
        assert node.proc is not None
        assert _lock_pid(node.dir) == node.proc.pid
        db = node.dir / "hotline.db"
        before = db.stat().st_mtime_ns, db.stat().st_size
        # a wrong passphrase too: refused for the lock, before the keystore is opened
        second = _hotline("serve", "--dir", str(node.dir), env={"HOTLINE_PASSPHRASE": "wrong"},
                          timeout=30)
        assert second.returncode == 1
        assert "error[node-running]" in second.stderr
        assert f"(pid {node.proc.pid})" in second.stderr
        assert (db.stat().st_mtime_ns, db.stat().st_size) == before
        # the offline repair, which needs the node stopped, is refused too
        repair = _hotline("repair", "--from-log", "--yes", "--dir", str(node.dir), timeout=30)
        assert repair.returncode == 1
        assert "error[node-running]" in repair.stderr
        # kill -9: the kernel releases the lock; a new serve starts at once
        node.kill9()
        node.start()
        assert node.proc is not None
        assert _lock_pid(node.dir) == node.proc.pid
    finally:
        node.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_serve_stops_gracefully_on_each_stop_signal(tmp_path: Path, signum: int) -> None:
    node = NodeProcess(tmp_path / "us", "US-JS", None).start()
    assert node.proc is not None
    node.proc.send_signal(signum)
    assert node.proc.wait(timeout=30) == 0
    assert "Finished server process" in node.log_path.read_text()
    node.proc = None
    assert _lock_pid(node.dir) is None  # released, its pid wiped
    node.start()  # and the directory serves again
    node.stop()
