"""The console's text rules: digits of any numeral system, the direction of user text,
desks by party and call steps with who was rung."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.calls.directory import parse_directory
from hotline.console import views
from hotline.console.text import ascii_digits, direction
from hotline.scenario import directory_toml

US = parse_directory(directory_toml("US-JS", 200.0), "us.toml")

ZERO = {"arabic-indic": 0x660, "extended-arabic-indic": 0x6F0, "devanagari": 0x966,
        "bengali": 0x9E6, "fullwidth": 0xFF10, "ascii": 0x30}


@pytest.mark.parametrize("system", sorted(ZERO))
@given(number=st.integers(min_value=0, max_value=999_999))
def test_digits_of_every_numeral_system_read_as_ascii(system: str, number: int) -> None:
    code = f"{number:06d}"
    typed = "".join(chr(ZERO[system] + int(d)) for d in code)
    assert ascii_digits(typed) == code


def test_other_characters_are_kept_and_group_spaces_dropped() -> None:
    assert ascii_digits("۳۸۸ ۴۵۸") == "388458"
    assert ascii_digits("12a4") == "12a4"


@pytest.mark.parametrize(("text", "expected"), [
    ("US-JS: سقط صاروخ قرب الحدود الساعة 15:40", "rtl"),
    ("Przewodow explosion at 15:40", "ltr"),
    ("RU: не наша ракета", "ltr"),
    ("שלום US", "rtl"),
    ("15:40", "ltr"),
    ("", "ltr"),
])
def test_direction_follows_the_dominant_script(text: str, expected: str) -> None:
    assert direction(text) == expected


def test_desks_are_grouped_by_party_in_a_stable_order() -> None:
    def desk(peer: str, role: str, staffed: bool) -> views.DeskView:
        return views.DeskView(peer=peer, role=role, title=role, staffed=staffed,
                              as_roles=("nmcc-do",))
    desks = [desk("RU-GS", "cgs", False), desk("PL-GS", "cgs", True),
             desk("RU-GS", "ccp-do", True)]
    groups = views.by_party(desks, {"RU-GS": "Russia"})
    assert [(g.party, g.name) for g in groups] == [("PL-GS", "PL-GS"), ("RU-GS", "Russia")]
    assert [d.role for d in groups[1].desks] == ["ccp-do", "cgs"]
    flipped = views.by_party([desk(d.peer, d.role, not d.staffed) for d in desks], {})
    assert [[d.address for d in g.desks] for g in flipped] == \
        [[d.address for d in g.desks] for g in groups]


def test_steps_name_titles_and_who_was_rung() -> None:
    call = {"direction": "out", "callee": "cgs@RU-GS", "peer": "RU-GS", "history": [
        {"state": "ringing", "role": "cgs", "who": [], "signed_by": "RU-GS"},
        {"state": "ringing", "role": "ccp-do", "who": ["ccp-1"], "signed_by": "RU-GS"}]}
    titles = views.titles_for(call, [
        {"party": "RU-GS", "role": "cgs", "titles": {"en": "Chief", "ar": "رئيس"}}],
        US, "ar")
    steps = views.steps_of(call, titles)
    assert [(s.roles[0].id, s.roles[0].title, s.who) for s in steps] == [
        ("cgs", "رئيس", ()), ("ccp-do", None, ("ccp-1",))]
