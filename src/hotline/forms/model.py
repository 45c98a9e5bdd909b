"""Templates of formatted notifications, and the check of a notification's fields.

A template is a data file, ``templates/<id>.toml`` (schema in docs/notifications.md):
its id and version, a title and a label for each field in every language of
:data:`LANGUAGES`, and typed fields. The enumerations and the words the renderer needs
are in ``templates/common.toml``. A notification names ``(template, version)``; a node
checks what it sends and what it receives against its own copy of that template.

Field values, as stored and as sent (canonical JSON: no floats, so coordinates are
decimal strings):

==========  =========================================================================
type        value
==========  =========================================================================
place       ``{"name": str, "lat": "50.47", "lon": "23.93"}`` (WGS 84 degrees,
            lat -90..90, lon -180..180; optional ``"radius_km": "5"``, 0 < r <= 20000)
datetime    ``{"at": "2022-11-15T15:40:00+01:00", "zone": "Europe/Warsaw"}`` (the
            offset, whole minutes, must be the zone's at that instant)
count       int, 0 <= n <= 10**9
enum        one of the enumeration's values (``common.toml`` ``[enums.NAME]``)
ref         32 lowercase hex digits: the id of another entry (notification, call, …)
text        str, 1..2000 characters, no control characters but newline, no bidi
            embedding/override/isolate, no lone surrogate or non-character (place
            names too): free text, shown "not translated" in every other language
==========  =========================================================================

Every refusal is a :class:`FieldError` naming the field (``error_id`` ``missing-field``,
``unknown-field`` or ``bad-field``).
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hotline.errors import HotlineError
from hotline.numerals import ascii_digits

LANGUAGES = ("en", "ar", "ru", "uk", "pl")
FIELD_TYPES = frozenset({"place", "datetime", "count", "enum", "ref", "text"})
SCHEMA = 1
MAX_TEXT = 2000
MAX_NAME = 200
MAX_COUNT = 10**9
_ID = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
TEMPLATE_ID = re.compile(r"[a-z][a-z0-9-]{0,47}")
# ASCII digits only ([0-9], not \d, which matches every numeral system): what is signed
# and sent is one spelling of a number; the edges read other digits (hotline.numerals)
_DECIMAL = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,7})?")
_RADIUS = re.compile(r"[0-9]{1,5}(\.[0-9]{1,3})?")
#: an IANA zone name (``Europe/Warsaw``, ``Etc/GMT+5``): no zone is longer, and a
#: longer one reaches the file system as an error other than "no such zone"
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}")


class FieldError(HotlineError):
    """A notification's field is missing, unknown or invalid: nothing is sent."""

    def __init__(self, error_id: str, field: str, problem: str) -> None:
        super().__init__(error_id, f"field {field!r}: {problem}", status=422)
        self.field = field

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "field": self.field}


class TemplateError(HotlineError):
    """A template that is unknown to this node, or a data file that breaks the schema."""

    def __init__(self, message: str) -> None:
        super().__init__("unknown-template", message, status=422)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    label: dict[str, str]  # language -> label
    enum: str | None = None  # the enumeration's name, for type "enum"


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    title: dict[str, str]
    fields: tuple[Field, ...]
    cap_event: str  # CAP <event> category word, in English

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def _translated(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) != set(LANGUAGES) or not all(
            isinstance(v, str) and v for v in value.values()):
        raise TemplateError(f"{where} needs a non-empty text in each of {LANGUAGES}")
    return dict(value)


def _parse_template(data: dict[str, Any], enums: dict[str, dict[str, dict[str, str]]],
                    source: str) -> Template:
    known = {"schema", "id", "version", "title", "cap_event", "fields"}
    if set(data) != known or data["schema"] != SCHEMA:
        raise TemplateError(f"{source}: keys must be {sorted(known)}, schema {SCHEMA}")
    if not isinstance(data["id"], str) or not TEMPLATE_ID.fullmatch(data["id"]):
        raise TemplateError(f"{source}: bad id")
    if type(data["version"]) is not int or data["version"] < 1:
        raise TemplateError(f"{source}: version must be a positive integer")
    fields = []
    for i, raw in enumerate(data["fields"]):
        where = f"{source} field {i}"
        if not set(raw) <= {"name", "type", "required", "label", "enum"}:
            raise TemplateError(f"{where}: unknown keys")
        if not isinstance(raw.get("name"), str) or not _NAME.fullmatch(raw["name"]):
            raise TemplateError(f"{where}: bad name")
        if raw.get("type") not in FIELD_TYPES:
            raise TemplateError(f"{where}: type must be one of {sorted(FIELD_TYPES)}")
        enum = raw.get("enum")
        if (raw["type"] == "enum") != (enum is not None) or (
                enum is not None and enum not in enums):
            raise TemplateError(f"{where}: an enum field names a known enumeration")
        fields.append(Field(raw["name"], raw["type"], bool(raw.get("required", True)),
                            _translated(raw.get("label"), f"{where} label"), enum))
    if len({f.name for f in fields}) != len(fields):
        raise TemplateError(f"{source}: two fields have one name")
    return Template(data["id"], data["version"], _translated(data["title"], f"{source} title"),
                    tuple(fields), str(data["cap_event"]))


@functools.cache
def common() -> dict[str, Any]:
    """``common.toml``: ``enums`` (name -> value -> language -> word) and ``words``
    (key -> language -> word)."""
    text = resources.files("hotline.forms").joinpath("templates/common.toml").read_text("utf-8")
    data = tomllib.loads(text)
    for name, values in data["enums"].items():
        for value, words in values.items():
            _translated(words, f"common.toml enums.{name}.{value}")
    for key, words in data["words"].items():
        _translated(words, f"common.toml words.{key}")
    return data


@functools.cache
def templates() -> dict[tuple[str, int], Template]:
    """Every template this node ships, by (id, version); a broken file raises
    :class:`TemplateError` (a test loads them all)."""
    out: dict[tuple[str, int], Template] = {}
    enums = common()["enums"]
    for entry in resources.files("hotline.forms").joinpath("templates").iterdir():
        if entry.name.endswith(".toml") and entry.name != "common.toml":
            t = _parse_template(tomllib.loads(entry.read_text("utf-8")), enums, entry.name)
            out[(t.id, t.version)] = t
    return out


def latest(template_id: str) -> Template:
    """The newest version of ``template_id``; :class:`TemplateError` if there is none."""
    found = [t for (tid, _), t in templates().items() if tid == template_id]
    if not found:
        names = sorted({tid for tid, _ in templates()})
        raise TemplateError(f"there is no template {template_id[:60]!r} (known: "
                            f"{', '.join(names)})")
    return max(found, key=lambda t: t.version)


def get(template_id: str, version: int) -> Template:
    """Exactly ``template_id`` version ``version``, as a receiver checks it."""
    t = templates().get((template_id, version))
    if t is None:
        raise TemplateError(f"this node has no template {template_id[:60]!r} version "
                            f"{version}")
    return t


# -- one value ---------------------------------------------------------------------------
def _degrees(value: Any, name: str, part: str, limit: int) -> str:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise FieldError("bad-field", name, f"{part} must be decimal degrees like '50.47'")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise FieldError("bad-field", name, f"{part} is not a number") from None
    if not -limit <= number <= limit:
        raise FieldError("bad-field", name, f"{part} must be within -{limit}..{limit}")
    return value


#: characters no free text or name may hold: C0 and C1 controls but newline (C1 ones
#: are invisible, and XML 1.0 discourages them); the bidi embeddings, overrides and
#: isolates, which reorder what follows them on a reader's screen (U+202E turns "23.93"
#: into "39.32"); lone surrogates (no UTF-8 carries them: canonical JSON refuses them
#: after the check) and the non-characters U+FFFE, U+FFFF (XML cannot hold them). Marks
#: (LRM, RLM, ALM) stay: they change no order beyond their own neighbours.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError("bad-field", name, "must be non-empty text")
    if len(value) > limit:
        raise FieldError("bad-field", name, f"is longer than {limit} characters")
    bad = _UNSAFE.search(value)
    if bad is not None:
        what = ("a bidi embedding, override or isolate" if "\u202a" <= bad[0] <= "\u2069"
                else "a control character or a non-character")
        raise FieldError("bad-field", name, f"holds {what} (U+{ord(bad[0]):04X})")
    return value


def check_value(f: Field, value: Any) -> Any:
    """``value`` if it is a valid value of ``f`` (shapes in the module docstring), else
    :class:`FieldError` naming ``f.name``."""
    n = f.name
    if f.type == "count":
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            raise FieldError("bad-field", n, f"must be a whole number 0..{MAX_COUNT}")
        return value
    if f.type == "enum":
        allowed = list(common()["enums"][f.enum])
        if value not in allowed:
            raise FieldError("bad-field", n, f"must be one of {', '.join(allowed)}")
        return value
    if f.type == "ref":
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise FieldError("bad-field", n, "must be an entry id (32 lowercase hex digits)")
        return value
    if f.type == "text":
        return _text(value, n, MAX_TEXT)
    if f.type == "place":
        if not isinstance(value, dict) or not {"name", "lat", "lon"} <= set(value) or not (
                set(value) <= {"name", "lat", "lon", "radius_km"}):
            raise FieldError("bad-field", n, "must have name, lat, lon (and radius_km)")
        out = {"name": _text(value["name"], n, MAX_NAME),
               "lat": _degrees(value["lat"], n, "lat", 90),
               "lon": _degrees(value["lon"], n, "lon", 180)}
        if "radius_km" in value:
            r = value["radius_km"]
            if not isinstance(r, str) or not _RADIUS.fullmatch(r) or not (
                    0 < Decimal(r) <= 20000):
                raise FieldError("bad-field", n, "radius_km must be a decimal 0 < r <= 20000")
            out["radius_km"] = r
        return out
    # datetime
    if not isinstance(value, dict) or set(value) != {"at", "zone"}:
        raise FieldError("bad-field", n, "must have at (ISO 8601 with offset) and zone")
    return {"at": _instant(value["at"], value["zone"], n), "zone": value["zone"]}


def _instant(at: Any, zone: Any, name: str) -> str:
    try:
        tz = ZoneInfo(zone) if isinstance(zone, str) and _ZONE.fullmatch(zone) else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        tz = None
    if tz is None:
        raise FieldError("bad-field", name, f"zone {zone!r} is not an IANA time zone")
    try:
        when = datetime.fromisoformat(at) if isinstance(at, str) and len(at) <= 40 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise FieldError("bad-field", name, "at must be ISO 8601 with a UTC offset")
    offset = when.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        # CAP (and every reader) writes offsets as ±hh:mm
        raise FieldError("bad-field", name, "the UTC offset must be whole minutes (±hh:mm)")
    try:
        # a year-1 or year-9999 instant moved to the zone leaves the calendar
        zone_offset = when.astimezone(tz).utcoffset()
    except OverflowError:
        zone_offset = None
    if zone_offset is None:
        raise FieldError("bad-field", name, "at is outside the years 0002..9998")
    if offset != zone_offset:
        raise FieldError("bad-field", name, f"the offset of {at} is not {zone}'s then")
    return when.isoformat()


def validate(template: Template, fields: Any) -> dict[str, Any]:
    """The fields of a notification of ``template``, checked: every required field
    present, no unknown one, each value valid. :class:`FieldError` names the first
    field refused (in the template's order)."""
    if not isinstance(fields, dict):
        raise FieldError("bad-field", "fields", "must be an object of field values")
    for name in fields:
        if template.field(name) is None:
            raise FieldError("unknown-field", str(name)[:40],
                             f"template {template.id} has no such field")
    out: dict[str, Any] = {}
    for f in template.fields:
        if f.name not in fields or fields[f.name] is None:
            if f.required:
                raise FieldError("missing-field", f.name, "is required")
            continue
        out[f.name] = check_value(f, fields[f.name])
    return out


def parse_text(f: Field, text: str) -> Any:
    """A value of ``f`` from the command line's ``--field name=TEXT``:

    - place: ``NAME@LAT,LON`` or ``NAME@LAT,LON~RADIUS_KM``
    - datetime: ``2022-11-15T15:40+01:00[Europe/Warsaw]``
    - count: ``2``; enum, ref, text: as written.
    """
    if f.type == "count":
        text = ascii_digits(text)
        if not re.fullmatch(r"[0-9]{1,10}", text):
            raise FieldError("bad-field", f.name, "must be a whole number 0..1000000000")
        return int(text)
    if f.type == "place":
        m = re.fullmatch(r"(.+)@([^,~]+),([^,~]+)(?:~(.+))?", text, re.S)
        if m is None:
            raise FieldError("bad-field", f.name, "write NAME@LAT,LON (or NAME@LAT,LON~KM)")
        value = {"name": m[1], "lat": ascii_digits(m[2]), "lon": ascii_digits(m[3])}
        if m[4]:
            value["radius_km"] = ascii_digits(m[4])
        return value
    if f.type == "datetime":
        m = re.fullmatch(r"([^\[\]]+)\[([^\[\]]+)\]", text)
        if m is None:
            raise FieldError("bad-field", f.name, "write 2022-11-15T15:40+01:00[Europe/Warsaw]")
        return {"at": m[1], "zone": m[2]}
    return text
