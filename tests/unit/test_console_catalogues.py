"""Every string the console can show is in every catalogue, translated, with the same
placeholders — extracted from the code and templates now, not from a list kept by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from hotline.calls.directory import LANGUAGES
from hotline.console.i18n import catalogue_path, translations

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _extracted() -> set[str | tuple[str, str]]:
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: set[str | tuple[str, str]] = set()
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


EXTRACTED = _extracted()


def test_the_extraction_finds_the_console_strings() -> None:
    assert "Incoming call" in EXTRACTED
    assert "Wrong operator, password or code." in EXTRACTED  # from messages.py
    assert "Answered" in EXTRACTED  # from web.py's state labels
    assert ("%(num)s more call is waiting", "%(num)s more calls are waiting") in EXTRACTED
    assert len(EXTRACTED) > 100


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_string_is_translated_with_its_placeholders(lang: str) -> None:
    with catalogue_path(lang).open("rb") as po:
        catalog = read_po(po, locale=lang)
    problems = []
    for wanted in sorted(EXTRACTED, key=str):
        msgid = wanted if isinstance(wanted, str) else wanted[0]
        message = catalog.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r}")
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(s and s.strip() for s in strings):
            problems.append(f"untranslated or fuzzy: {msgid!r}")
            continue
        source = wanted if isinstance(wanted, str) else wanted[1]
        allowed = set(PLACEHOLDER.findall(source))
        for text in strings:
            used = set(PLACEHOLDER.findall(text))
            # plural forms for "one"/"two" may spell the number out; never add new ones
            if used - allowed or (len(strings) == 1 and used != allowed):
                problems.append(f"placeholders differ in {msgid!r}: {text!r}")
    assert not problems, f"{lang}: " + "; ".join(problems)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_catalogues_are_really_in_their_language(lang: str) -> None:
    """A catalogue that copied English would pass the completeness check."""
    tr = translations(lang)
    same = [m for m in EXTRACTED if isinstance(m, str) and tr.gettext(m) == m
            and len(m) > 12]
    assert not same, same


def test_plural_forms_follow_the_language_rules() -> None:
    ru = translations("ru")
    one, few, many = (ru.ngettext("%(num)s more call is waiting",
                                  "%(num)s more calls are waiting", n) for n in (1, 3, 5))
    assert len({one, few, many}) == 3
    ar = translations("ar")
    forms = {ar.ngettext("%(num)s more call is waiting", "%(num)s more calls are waiting", n)
             for n in (1, 2, 3, 11)}
    assert len(forms) == 4  # one, two, few (3-10), many (11-99) differ in Arabic
