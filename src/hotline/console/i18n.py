"""Languages of the operator console: catalogues, negotiation, locale formatting.

Catalogues are gettext ``.po`` files under ``console/locale`` and are compiled in memory
when the console starts (with Babel), so running the console needs no build step and a
translator edits one text file. English is the source language: its catalogue maps every
string to itself, which lets the completeness test treat all five languages alike.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton, get_timezone_gmt
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, get_minus_sign_symbol, get_plus_sign_symbol
from babel.support import Translations
from babel.units import format_unit

from hotline.calls.directory import LANGUAGES
from hotline.schedules.localtime import zone

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "console"
RIGHT_TO_LEFT = frozenset({"ar"})
DEFAULT_LANGUAGE = "en"
NO_VALUE = "\u2013"  # an en dash where a time is not known


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(lang: str) -> Translations:
    """The compiled catalogue of ``lang`` (read once per process)."""
    with catalogue_path(lang).open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def supported(lang: str | None) -> str | None:
    """``lang`` if the console speaks it (``pl-PL`` counts as ``pl``), else None."""
    if not lang:
        return None
    base = lang.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else None


def negotiate(query: str | None, accept_language: str | None,
              fallback: str = DEFAULT_LANGUAGE) -> str:
    """Before login: an explicit ``?lang=`` wins, then the browser's ``Accept-Language``
    in its order of preference (q-values), then ``fallback``."""
    chosen = supported(query)
    if chosen:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        lang = supported(tag)
        if lang and quality > 0:
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else fallback


@dataclass(frozen=True)
class Formatter:
    """Dates, times and numbers as an operator of ``lang`` reads them. Times are in UTC
    on a 24-hour clock in every language (the header says "Times in UTC"): the parties
    of a call sit in different time zones, and one unambiguous clock on every screen
    avoids "your 14:00 or mine?" and "a.m. or p.m.?"."""

    lang: str

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang)

    @property
    def direction(self) -> str:
        return "rtl" if self.lang in RIGHT_TO_LEFT else "ltr"

    def time(self, ms: int | None) -> str:
        if ms is None:
            return NO_VALUE
        return format_skeleton("Hms", _utc(ms), tzinfo=UTC, locale=self.lang)

    def datetime(self, ms: int | None) -> str:
        """The locale's medium date and its way of joining a date and a time."""
        if ms is None:
            return NO_VALUE
        joined = str(self.locale.datetime_formats["medium"])
        return joined.replace("{1}", format_date(_utc(ms), "medium", locale=self.lang)
                              ).replace("{0}", self.time(ms))

    def zoned(self, ms: int | None, zone_name: str) -> str:
        """An instant as the wall clock of ``zone_name`` reads it, with the day and the
        offset in force then: ``Sun, Mar 29 08:00 (GMT+02:00)``. The one exception to UTC
        everywhere: a duty schedule is kept in its desk's zone (docs/schedules.md), and
        its page says which zone it is."""
        if ms is None:
            return NO_VALUE
        local = _utc(ms).astimezone(zone(zone_name))
        day = format_skeleton("MMMEd", local, locale=self.lang)
        clock = format_skeleton("Hm", local, locale=self.lang)
        gmt = get_timezone_gmt(local, "long", locale=self.lang)
        return f"{day} {clock} ({gmt})"

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.lang)

    def milliseconds(self, ms: int, *, signed: bool = False) -> str:
        """``120 ms`` in the locale's digits and unit (``120 мс``, ``120 ملي ث``); with
        ``signed``, positive values carry the locale's plus sign."""
        sign = ""
        if signed and ms > 0:
            sign = get_plus_sign_symbol(self.lang)
        elif ms < 0:
            sign = get_minus_sign_symbol(self.lang)
        value = sign + format_decimal(abs(ms), locale=self.lang)
        return str(format_unit(value, "duration-millisecond", "short", locale=self.lang))

    def offset(self, ms: int | None, error_ms: int | None) -> str:
        """A measured clock offset and its margin, ``+120 ms ± 3 ms``; a dash when it has
        not been measured yet."""
        if ms is None:
            return NO_VALUE
        shown = self.milliseconds(ms, signed=True)
        if error_ms is None:
            return shown
        return f"{shown} \u00b1 {self.milliseconds(error_ms)}"

    def elapsed(self, ms: int) -> str:
        """``m:ss`` (``h:mm:ss`` past an hour). All five locales write Latin digits by
        default (CLDR), so the browser's ticking copy of this (console.js) matches."""
        seconds = max(0, ms // 1000)
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            return f"{hours}:{minutes:02d}:{secs:02d}"
        return f"{minutes}:{secs:02d}"


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
