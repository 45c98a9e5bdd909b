"""Link policies checked against the node's links, wherever a directory comes in: the
offline ``roles apply``, the operator API's ``PUT /api/v1/directory``, and the node
loading its stored directory (issue 15, item 14)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hotline.scenario import directory_toml
from tests.calls import apply_scenario, wait_for_desks
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def _line(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


def test_a_typo_in_a_policy_party_is_refused_by_roles_apply_and_forced_only_on_purpose(
        make_sqlite_node: Make, tmp_path: Path) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    typo = directory_toml("RU-GS", 200, 5000).replace("[links.US-JS]", "[links.US-SJ]")
    path = tmp_path / "ru.toml"
    path.write_text(typo, encoding="utf-8")
    line = _line(typo, "[links.US-SJ]")

    refused = hotline("roles", "apply", str(path), "--dir", str(ru.dir), check=False)
    assert refused.returncode == 1
    assert "error[bad-directory]" in refused.stderr
    assert f'ru.toml:{line}: links.US-SJ: no link with "US-SJ"' in refused.stderr
    assert '(did you mean "US-JS"?)' in refused.stderr
    assert "links: linked party US-JS has no [links.US-JS] policy" in refused.stderr
    assert ru.query("SELECT COUNT(*) FROM directory_versions")[0][0] == 0

    forced = hotline("roles", "apply", str(path), "--dir", str(ru.dir), "--force", "--json")
    assert as_json(forced)["version"] == 1
    assert len(as_json(forced)["warnings"]) == 2
    assert f'warning: ru.toml:{line}: links.US-SJ: no link with "US-SJ"' in forced.stderr

    # the node loading the forced directory says what is wrong with it in its log
    ru.start()
    wait_until(lambda: ru.log_lines("linked party US-JS has no [links.US-JS] policy"), 30,
               what="the node's warning about the stored directory")
    assert ru.log_lines('directory version 1: links.US-SJ: no link with "US-SJ"')


def test_put_directory_checks_the_roles_the_peer_offers(make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    apply_scenario(us)
    apply_scenario(ru)
    us.start()
    ru.start()
    offered = {d["role"] for d in wait_for_desks(us, "RU-GS")}
    assert offered == {"cgs", "cgs-1d", "ccp-do", "dcd"}
    before = us.api("GET", "/api/v1/directory").json()["version"]
    good = directory_toml("US-JS", 200, 5000, peers=["RU-GS"])
    typo = good.replace('"nmcc-do" = ["cgs", "cgs-1d", "ccp-do", "dcd"]',
                        '"nmcc-do" = ["cgs", "cgs-1d", "ccp-do", "dcx"]')
    assert typo != good
    refused = us.api("PUT", "/api/v1/directory", json={"toml": typo})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "bad-directory"
    assert ('links.RU-GS.may_call.nmcc-do: RU-GS does not offer role "dcx" (its desks for '
            'us: ccp-do, cgs, cgs-1d, dcd)') in refused.json()["message"]
    assert us.api("GET", "/api/v1/directory").json()["version"] == before
    forced = us.api("PUT", "/api/v1/directory", json={"toml": typo, "force": True})
    assert forced.status_code == 200, forced.text
    assert forced.json()["changed"] is True
    assert len(forced.json()["warnings"]) == 1
