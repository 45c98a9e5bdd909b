"""Directory writes against a running node, as administrators would race them: several
``hotline roles apply`` processes at once, ``--base-version`` and ``If-Match`` naming a
stale version, and roster changes over the API while files are applied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.test_cli import as_json, hotline
from tests.integration.test_directory_writes import staffed_s, variant
from tests.nodes import PASSPHRASE, NodeProcess

Make = Callable[..., NodeProcess]
PROCESSES = 8


def apply_at_once(node: NodeProcess, files: list[Path]) -> list[subprocess.CompletedProcess[str]]:
    """Start one ``hotline roles apply`` process per file, all before any has finished."""
    env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE}
    procs = [subprocess.Popen([sys.executable, "-m", "hotline", "roles", "apply", str(f),
                               "--dir", str(node.dir), "--json"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


def stored(node: NodeProcess) -> dict[int, dict[str, Any]]:
    return {int(v): json.loads(b)
            for v, b in node.query("SELECT version, body FROM directory_versions")}


def test_concurrent_applies_stale_bases_and_override_races_on_a_running_node(
        make_node: Make, tmp_path: Path) -> None:
    node = make_node("RU-GS").start()
    files = []
    for i in range(PROCESSES):
        files.append(tmp_path / f"d{i}.toml")
        files[-1].write_text(variant(i))
    runs = apply_at_once(node, files)
    assert [r.returncode for r in runs] == [0] * PROCESSES, [r.stderr for r in runs]
    versions = [as_json(r)["version"] for r in runs]
    assert sorted(versions) == list(range(1, PROCESSES + 1))
    bodies = stored(node)
    for i, version in enumerate(versions):
        assert staffed_s(bodies[version]) == i + 1

    # a stale base, over the API and from the CLI: refused, nothing written
    current = node.api("GET", "/api/v1/directory")
    assert current.headers["etag"] == f'"{PROCESSES}"'
    stale = node.api("PUT", "/api/v1/directory", json={"toml": variant(50)},
                     headers={"if-match": f'"{PROCESSES - 1}"'})
    assert stale.status_code == 409
    assert stale.json()["error"] == "directory-conflict"
    assert stale.json()["current_version"] == PROCESSES
    spec = node.api("GET", "/api/v1/openapi.json").json()["paths"]["/api/v1/directory"]["put"]
    assert "409" in spec["responses"]
    assert "current_version" in json.dumps(spec["responses"]["409"]) or \
        "DirectoryConflictBody" in json.dumps(spec["responses"]["409"])
    assert "if-match" in [p["name"] for p in spec["parameters"]]
    bad_tag = node.api("PUT", "/api/v1/directory", json={"toml": variant(50)},
                       headers={"if-match": '"7", "8"'})
    assert bad_tag.status_code == 422
    assert "if-match" in bad_tag.json()["message"]
    path = tmp_path / "stale.toml"
    path.write_text(variant(51))
    cli = hotline("roles", "apply", str(path), "--dir", str(node.dir), "--base-version", "3",
                  check=False)
    assert cli.returncode == 1
    assert "error[directory-conflict]" in cli.stderr
    assert f"now at version {PROCESSES}" in cli.stderr
    assert max(stored(node)) == PROCESSES
    assert len(node.log_lines("directory write from api refused")) == 1
    fresh = hotline("roles", "apply", str(path), "--dir", str(node.dir), "--base-version",
                    str(PROCESSES), "--json")
    assert as_json(fresh)["version"] == PROCESSES + 1
    put = node.api("PUT", "/api/v1/directory", json={"toml": variant(52)},
                   headers={"if-match": f'"{PROCESSES + 1}"'})
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{PROCESSES + 2}"'

    # overrides over the API while files are applied: all kept, none makes a version
    before = PROCESSES + 2
    stop = threading.Event()
    duties: list[int] = []
    failures: list[str] = []  # checked after the thread ends

    def roster() -> None:
        i = 0
        while not stop.is_set():
            answer = node.api("POST", "/api/v1/roster", json={
                "operator": "cgs-1", "role": "cgs", "status": "unavailable",
                "from_ms": i, "until_ms": i + 1})
            if answer.status_code != 200:
                failures.append(answer.text)
                return
            duties.append(answer.json()["override"]["id"])
            i += 1
    thread = threading.Thread(target=roster)
    thread.start()
    try:
        for i in range(PROCESSES // 2):
            files[i].write_text(variant(100 + i))
        runs = apply_at_once(node, files[:PROCESSES // 2])
    finally:
        stop.set()
        thread.join(timeout=60)
    assert [r.returncode for r in runs] == [0] * (PROCESSES // 2), [r.stderr for r in runs]
    bodies = stored(node)
    assert sorted(bodies) == list(range(1, before + PROCESSES // 2 + 1))
    assert failures == []
    assert duties, "no override was added during the applies"
    kept = node.query("SELECT id FROM schedule_overrides ORDER BY id")
    assert [r.id for r in kept] == duties
    for i, run in enumerate(runs):
        assert staffed_s(bodies[as_json(run)["version"]]) == 100 + i + 1
