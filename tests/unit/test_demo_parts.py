"""The demo's pure parts: outcomes as data, the narration of a call's events, the node
directory's lock (a real ``flock`` between real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from hotline.calls.directory import parse_directory
from hotline.cli.demo_outcome import Outcome, all_met, summary
from hotline.cli.demo_story import CallStory
from hotline.errors import HotlineError
from hotline.nodedir.lock import acquire, held
from hotline.scenario import directory_toml


def test_all_met_needs_every_outcome_and_at_least_one() -> None:
    assert all_met([Outcome("a", True, ""), Outcome("b", True, "")])
    assert not all_met([Outcome("a", True, ""), Outcome("b", False, "x")])
    assert not all_met([])


def test_the_summary_table_shows_each_row_and_what_was_missed() -> None:
    console = Console(width=100, record=True)
    summary(console, [Outcome("call answered", True, "answered by ccp-2"),
                      Outcome("log verify RU-GS", False, "BROKEN: entry 3")])
    text = console.export_text()
    assert "call answered" in text
    assert "BROKEN: entry 3" in text
    assert "1 of 2 expected outcome(s) NOT met" in text


def _story() -> tuple[CallStory, Console]:
    console = Console(width=200, record=True)
    dirs = {"RU-GS": parse_directory(directory_toml("RU-GS", 60.0), "RU-GS.toml")}
    return CallStory(console, dirs, "RU-GS"), console


def _event(state: str, role: str | None, who: list[str], signer: str = "RU-GS",
           operator: str | None = None) -> dict[str, object]:
    return {"state": state, "role": role, "who": who, "signed_by": signer,
            "operator": operator, "verified": True, "reason": None}


def test_the_story_follows_the_signed_events_and_explains_each_kind_once() -> None:
    story, console = _story()
    for event in (_event("placed", "nmcc-do", [], signer="US-JS"),
                  _event("delivered", "cgs", []), _event("ringing", "cgs", []),
                  _event("ringing", "cgs-1d", []), _event("ringing", "ccp-do", ["ccp-3"]),
                  _event("ringing", "ccp-do", ["ccp-3"]),
                  _event("answered", "ccp-do", [], operator="ccp-3")):
        story(event)
    assert story.lines == [
        "RU-GS's node has the call: delivered.",
        "ringing the Chief of the General Staff: no one holding the role is on duty.",
        "the Chief of the General Staff is not on duty, so the call rings the First Deputy "
        "Chief of the General Staff.",
        "ringing the First Deputy Chief of the General Staff: no one holding the role is on "
        "duty.",
        "the First Deputy Chief of the General Staff is not on duty, so the call rings the "
        "Duty officer, Central Command Post.",
        "ringing the Duty officer, Central Command Post: ccp-3 on duty.",
        "no answer yet: the Duty officer, Central Command Post rings again (ccp-3).",
        "answered by ccp-3, Duty officer, Central Command Post."]
    text = console.export_text()
    for kind in ("“delivered” is RU-GS's node", "“ringing” is RU-GS signing",
                 "“signed by RU-GS (verified)” means"):
        assert text.count(kind) == 1, kind


def test_a_step_someone_was_on_duty_for_escalates_as_not_answered() -> None:
    story, _console = _story()
    story(_event("ringing", "cgs", ["cgs-1"]))
    story(_event("ringing", "cgs-1d", []))
    assert story.lines[1] == ("the Chief of the General Staff did not answer in time, so "
                              "the call rings the First Deputy Chief of the General Staff.")


def test_an_unverified_step_gets_no_proof_sentence() -> None:
    story, console = _story()
    story({**_event("delivered", "cgs", []), "verified": False})
    assert "(verified)” means" not in console.export_text()


HOLD = """
import sys
from pathlib import Path
from hotline.nodedir.lock import acquire
lock = acquire(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.readline()
"""


def test_the_lock_refuses_a_second_holder_and_dies_with_the_first(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            assert held(tmp_path)
            with pytest.raises(HotlineError) as refused:
                acquire(tmp_path)
            assert refused.value.error_id == "node-running"
            assert f"(pid {holder.pid})" in refused.value.message
        finally:
            holder.kill()  # kill -9: the kernel lets the lock go
            holder.wait()
    assert not held(tmp_path)
    lock = acquire(tmp_path)
    assert lock is not None
    assert held(tmp_path)  # another descriptor, even in this process, sees it held
    lock.release()
    assert (tmp_path / ".lock").read_text() == ""


def test_no_lock_for_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    assert acquire(tmp_path / "missing") is None
    assert not held(tmp_path / "missing")


@pytest.mark.parametrize("kind", ["directory", "dangling-link"])
def test_a_lock_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ".lock"
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "missing" / "lock")
    with pytest.raises(HotlineError) as refused:
        acquire(tmp_path)
    assert refused.value.error_id == "unwritable-file"
    assert ".lock" in refused.value.message
    assert not held(tmp_path)  # nothing holds it; the demo's preflight asks no more


@pytest.mark.parametrize("speed", [0.5, 1.0, 5.0, 60.0, 600.0])
def test_the_demo_waits_for_its_call_longer_than_the_scaled_chain_takes(speed: float) -> None:
    """The scenario call is answered where RU's chain reaches the duty officer, after the
    waits of the steps before it, divided by ``--speed``: the demo's wait for the call
    must outlast that at every speed it accepts (it used a fixed 30 s, so
    ``demo --speed 0.5 --check`` failed "the call did not end answered")."""
    from hotline.cli.demo import CHECK_TIMEOUT, call_wait

    chain = parse_directory(directory_toml("RU-GS", speed), "RU-GS.toml").chains["cgs"]
    whole_chain_ms = sum(step.wait_ms for step in chain.steps)
    assert whole_chain_ms / 1000 + CHECK_TIMEOUT <= call_wait(speed) + 0.001
