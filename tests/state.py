"""Helpers for state-check tests: edit a stopped node's database behind its back, and
run the offline commands (``log verify``, ``repair``, ``serve``) as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from sqlalchemy import text

from hotline.store.engine import create_engine
from tests.nodes import PASSPHRASE, NodeProcess


def edit(node: NodeProcess, sql: str, **params: Any) -> int:
    """Run one statement on the node's database; returns the rows it changed."""
    engine = create_engine(node.config.db)
    try:
        with engine.begin() as conn:
            return int(conn.execute(text(sql), params).rowcount)
    finally:
        engine.dispose()


def hotline(node: NodeProcess, *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE}
    return subprocess.run([sys.executable, "-m", "hotline", *args, "--dir", str(node.dir)],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


def verify(node: NodeProcess) -> tuple[int, dict[str, Any]]:
    done = hotline(node, "log", "verify", "--json")
    return done.returncode, json.loads(done.stdout)


def findings(node: NodeProcess) -> list[dict[str, Any]]:
    code, body = verify(node)
    state: list[dict[str, Any]] = body["state"]["findings"]
    assert (code == 0) == (not state and body["ok"]), body
    return state


def serve_refused(node: NodeProcess) -> str:
    """Start the node expecting it to refuse; returns what it said."""
    env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE}
    done = subprocess.run([sys.executable, "-m", "hotline", "serve", "--dir", str(node.dir)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr
