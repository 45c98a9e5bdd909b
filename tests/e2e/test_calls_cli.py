"""Calls from the command line, as operators on both sides would place and answer them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hotline.admin import list_links
from hotline.scenario import directory_toml
from tests.calls import wait_for_desks, wait_for_event
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def _apply(node: NodeProcess, speed: float = 200) -> None:
    path = node.dir / "directory.toml"
    linked = [link.party for link in list_links(node.dir)]
    path.write_text(directory_toml(node.party, speed, 5000, peers=linked))
    result = hotline("roles", "apply", str(path), "--dir", str(node.dir), "--json")
    assert as_json(result)["changed"] is True


def test_call_answer_and_calls_json_from_the_cli(make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    _apply(us)
    _apply(ru)
    us.start()
    ru.start()
    wait_for_desks(us, "RU-GS")
    placed = hotline("call", "cgs@RU-GS", "--dir", str(us.dir), "--as", "nmcc-do",
                     "--reason", "Przewodow")
    call_id = placed.stdout.splitlines()[0].strip()
    assert len(call_id) == 32
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    hotline("answer", call_id, "--dir", str(ru.dir), "--as", "ccp-do", "--operator", "ccp-1")

    def answered() -> dict[str, object] | None:
        calls = as_json(hotline("calls", "--dir", str(us.dir), "--json"))["calls"]
        call = next(c for c in calls if c["id"] == call_id)
        return call if call["state"] == "answered" else None
    call = wait_until(answered, 30, what="the answer at US")
    for entry in call["history"]:
        assert set(entry) >= {"state", "role", "operator", "at", "signed_by", "verified"}
        assert entry["verified"] is True
    assert [e["state"] for e in call["history"]][-1] == "answered"
    assert call["history"][-1]["operator"] == "ccp-1"
    # the human view shows the same call
    table = hotline("calls", "--dir", str(us.dir)).stdout
    assert call_id in table
    assert "ANSWERED" in table
    # and the conversation it opened works from the CLI
    hotline("conversation", "say", call_id, "hello from NMCC", "--dir", str(us.dir),
            "--as", "nmcc-do")
    wait_until(lambda: "hello from NMCC" in hotline(
        "conversation", "show", call_id, "--dir", str(ru.dir)).stdout, 30,
        what="the message at RU")


def test_decline_needs_a_reason_and_bad_directory_names_line_and_field(
        make_sqlite_node: Make, tmp_path: Path) -> None:
    node = make_sqlite_node("RU-GS")
    bad = tmp_path / "roles.toml"
    bad.write_text('[roles.cgs]\ntitle = { en = "Chief" }\n\n[chains.cgs]\n'
                   '[[chains.cgs.steps]]\nring = ["cgs"]\nwait = "soon"\n')
    result = hotline("roles", "apply", str(bad), "--dir", str(node.dir), check=False)
    assert result.returncode == 1
    assert "error[bad-directory]" in result.stderr
    assert "roles.toml:7: chains.cgs.steps[0].wait" in result.stderr
    assert node.query("SELECT COUNT(*) FROM directory_versions")[0][0] == 0
    missing = hotline("decline", "ab" * 16, "--dir", str(node.dir), "--as", "cgs",
                      check=False)
    assert missing.returncode == 2  # --reason is required
    assert "--reason" in missing.stderr
