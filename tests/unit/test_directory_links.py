"""The link checks of a directory: against the node's links and its peers' desks."""

from __future__ import annotations

from hotline.calls.directory import parse_directory
from hotline.calls.directory.links import LinkFacts, check_links
from hotline.calls.directory.locate import Locator
from hotline.scenario import PARTIES, directory_toml, example_path, peers_of

RU_POLICY_TYPO = directory_toml("RU-GS").replace("[links.US-JS]", "[links.US-SJ]")


def _check(text: str, me: str, facts: LinkFacts) -> tuple[list[str], list[str]]:
    directory = parse_directory(text, "d.toml")
    errors, warnings = check_links(directory, me, facts, Locator(text).line_of)
    return [p.render("d.toml") for p in errors], [p.render("d.toml") for p in warnings]


def _line(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


def test_a_typo_in_a_policy_party_names_both_the_stray_policy_and_the_link_without_one(
        ) -> None:
    errors, warnings = _check(RU_POLICY_TYPO, "RU-GS", LinkFacts(frozenset({"US-JS"})))
    line = _line(RU_POLICY_TYPO, "[links.US-SJ]")
    assert errors == [
        f'd.toml:{line}: links.US-SJ: no link with "US-SJ": this policy would apply to '
        'nobody (linked parties: US-JS) (did you mean "US-JS"?)',
        f"d.toml:{line}: links: linked party US-JS has no [links.US-JS] policy: every call "
        "from US-JS would be refused and it would be offered no desks"]
    assert warnings == []


def test_the_scenario_examples_pass_with_their_links_and_fail_without() -> None:
    for party in PARTIES:
        text = example_path(party).read_text(encoding="utf-8")
        assert _check(text, party, LinkFacts(frozenset(peers_of(party)))) == ([], [])
        errors, _ = _check(text, party, LinkFacts(frozenset()))
        assert len(errors) == len(peers_of(party))
        assert all("no link with" in e for e in errors)


def test_a_removed_link_is_a_warning_and_an_own_party_policy_an_error() -> None:
    text = directory_toml("RU-GS")
    errors, warnings = _check(text, "RU-GS", LinkFacts(frozenset(), frozenset({"US-JS"})))
    assert errors == []
    assert len(warnings) == 1
    assert "links.US-JS: is a policy for a removed link" in warnings[0]
    errors, _ = _check(text, "US-JS", LinkFacts(frozenset({"US-JS"})))
    assert any("links.US-JS: names this node's own party" in e for e in errors)


def test_roles_the_peer_does_not_offer_are_errors_where_its_desks_are_known() -> None:
    text = directory_toml("US-JS", peers=["RU-GS"]).replace(
        '"nmcc-do" = ["cgs", "cgs-1d", "ccp-do", "dcd"]',
        '"nmcc-do" = ["cgs", "cgx", "ccp-do", "dcd"]')
    facts = LinkFacts(frozenset({"RU-GS"}))
    assert _check(text, "US-JS", facts) == ([], [])  # no desk report yet: not known
    offered = LinkFacts(frozenset({"RU-GS"}),
                        offered={"RU-GS": frozenset({"cgs", "cgs-1d", "ccp-do"})})
    errors, _ = _check(text, "US-JS", offered)
    may_call = _line(text, 'may_call = { "cjcs" = ["cgs"], "nmcc-do" = ["cgs", "cgx", '
                           '"ccp-do", "dcd"] }')
    fallback = _line(text, 'call = ["dcd@RU-GS"]')
    assert errors == [
        f'd.toml:{may_call}: links.RU-GS.may_call.nmcc-do: RU-GS does not offer role '
        '"cgx" (its desks for us: ccp-do, cgs, cgs-1d)',
        f'd.toml:{may_call}: links.RU-GS.may_call.nmcc-do: RU-GS does not offer role '
        '"dcd" (its desks for us: ccp-do, cgs, cgs-1d)',
        f'd.toml:{fallback}: links.RU-GS.fallback[0].call: RU-GS does not offer role '
        '"dcd" (its desks for us: ccp-do, cgs, cgs-1d)']
