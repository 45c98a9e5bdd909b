"""One notification in one reader's language.

Labels, titles and enumeration values come from the template files; dates, numbers and
coordinates are formatted for the reader's locale with Babel; a date-time is shown in
the zone it was given in (the place's own), with that zone's name and UTC offset. Free
text is never translated: it is shown as written, marked "not translated" in the
reader's language.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

from hotline.forms.model import LANGUAGES, Template, common

RTL = frozenset({"ar"})
#: Unicode bidi isolates (UAX #9): left-to-right, first-strong, and their end
LRI, FSI, PDI = "\u2066", "\u2068", "\u2069"


@dataclass(frozen=True)
class Row:
    """One field as shown: ``text`` in the reader's language, except for free text
    (``translated`` False: shown as written, in the sender's language ``lang``)."""

    name: str
    type: str
    label: str
    text: str
    translated: bool
    lang: str


@dataclass(frozen=True)
class Rendered:
    lang: str
    dir: str  # "rtl" or "ltr"
    title: str
    rows: tuple[Row, ...]
    not_translated: str  # the marker's words in ``lang``

    def as_dict(self) -> dict[str, Any]:
        return {"lang": self.lang, "dir": self.dir, "title": self.title,
                "rows": [{"name": r.name, "type": r.type, "label": r.label, "text": r.text,
                          "translated": r.translated, "lang": r.lang} for r in self.rows]}

    def as_text(self) -> str:
        """Plain text, one ``label: value`` line per field (the CLI's and the golden
        files' form); free text is prefixed with ``[not translated]`` in ``lang``."""
        lines = [self.title]
        for r in self.rows:
            value = r.text if r.translated else (
                f"[{self.not_translated}] {isolate(r.text, self.lang, first_strong=True)}")
            lines.append(f"{r.label}: {value}")
        return "\n".join(lines) + "\n"


def word(key: str, lang: str) -> str:
    return str(common()["words"][key][lang])


def _has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def isolate(text: str, lang: str, *, first_strong: bool = False) -> str:
    """``text`` as one unit in a right-to-left language (a number with its degree sign,
    a zone name, an id, a place's name), so the bidi algorithm cannot pull its
    neutral characters to the other side. In a left-to-right language only text that
    holds right-to-left letters (an Arabic place name, free text) is isolated: without,
    the numbers after it would join its right-to-left run."""
    if lang not in RTL and not (first_strong and _has_rtl(text)):
        return text
    return f"{FSI if first_strong else LRI}{text}{PDI}"


def coordinate(value: str, lang: str, *, latitude: bool) -> str:
    """``"50.47"`` as ``50.47° N`` (en), ``50,47°`` and the Russian abbreviation of
    "north latitude" (ru), …: the hemisphere words are in ``common.toml``."""
    number = Decimal(value)
    sides = ("north", "south") if latitude else ("east", "west")
    side = sides[0] if number >= 0 else sides[1]
    digits = format_decimal(abs(number), format="0.00#####", locale=lang)
    return f"{isolate(digits + '°', lang)} {word(side, lang)}"


def place(value: dict[str, str], lang: str) -> str:
    name = isolate(value["name"], lang, first_strong=True)
    text = (f"{name} ({coordinate(value['lat'], lang, latitude=True)}"
            f"{word('comma', lang)}{coordinate(value['lon'], lang, latitude=False)}")
    if "radius_km" in value:
        radius = format_decimal(Decimal(value["radius_km"]), locale=lang)
        text += f"; {word('radius', lang)} {radius} {word('km', lang)}"
    return text + ")"


def instant(value: dict[str, str], lang: str) -> str:
    """The time in its own zone, e.g. ``15 November 2022, 15:40 (Europe/Warsaw,
    UTC+01:00)``; the clock is 24-hour in every language (no AM/PM to misread)."""
    zone = ZoneInfo(value["zone"])
    when = datetime.fromisoformat(value["at"]).astimezone(zone)
    comma = word("comma", lang)
    date = format_datetime(when, "d MMMM y", tzinfo=zone, locale=lang)
    clock = format_datetime(when, "HH:mm", tzinfo=zone, locale=lang)
    offset = when.strftime("%z")
    zone_offset = f"{value['zone']}{comma}UTC{offset[:3]}:{offset[3:]}"
    return f"{date}{comma}{clock} ({isolate(zone_offset, lang)})"


def value_text(kind: str, value: Any, lang: str, enum: str | None = None) -> str:
    """One value of a field of type ``kind`` in ``lang`` (not for ``text``)."""
    if kind == "place":
        return place(value, lang)
    if kind == "datetime":
        return instant(value, lang)
    if kind == "count":
        return str(format_decimal(value, locale=lang))
    if kind == "enum":
        return str(common()["enums"][enum][value][lang])
    return isolate(str(value), lang)  # ref: an id, the same in every language


def render(template: Template, fields: dict[str, Any], lang: str, *,
           original: str = "en") -> Rendered:
    """``fields`` (already validated against ``template``) for a reader of ``lang``;
    ``original`` is the sender's language, the one free text is written in."""
    if lang not in LANGUAGES:
        lang = "en"
    rows = []
    for f in template.fields:
        if f.name not in fields:
            continue
        value = fields[f.name]
        if f.type == "text":
            rows.append(Row(f.name, f.type, f.label[lang], value, False, original))
        else:
            rows.append(Row(f.name, f.type, f.label[lang],
                            value_text(f.type, value, lang, f.enum), True, lang))
    return Rendered(lang, "rtl" if lang in RTL else "ltr", template.title[lang],
                    tuple(rows), word("not_translated", lang))
