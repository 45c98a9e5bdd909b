"""Edge values of every field type: what the check refuses (naming the field, a stable
id) and what it takes must also render, encode canonically and export as valid CAP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hotline.console.notices import fields_from_form
from hotline.exports.cap import notice_alert
from hotline.exports.jsonl import read_jsonl, to_jsonl
from hotline.forms import model
from hotline.forms.render import render
from hotline.protocol import canonical
from tests.forms_scenario import PRZEWODOW

XSD = etree.XMLSchema(etree.parse(str(Path(__file__).resolve().parents[1] / "data" /
                                      "CAP-v1.2.xsd")))
TEMPLATE = model.latest("incident-notification")


def _with(**over: Any) -> dict[str, Any]:
    return {**PRZEWODOW, **over}


def _refused(fields: dict[str, Any], name: str) -> model.FieldError:
    with pytest.raises(model.FieldError) as caught:
        model.validate(TEMPLATE, fields)
    assert caught.value.field == name
    assert caught.value.error_id == "bad-field"
    return caught.value


def _exported(fields: dict[str, Any]) -> None:
    """Taken values go all the way: canonical JSON, every language, CAP, JSON Lines."""
    checked = model.validate(TEMPLATE, fields)
    canonical.encode(checked)
    for lang in model.LANGUAGES:
        render(TEMPLATE, checked, lang, original="pl").as_text()
    notice = {"id": "b" * 32, "party": "PL-GS", "template": TEMPLATE.id,
              "version": TEMPLATE.version, "lang": "pl", "fields": checked,
              "recipients": ["UA-GS"], "role": None, "operator": None,
              "sent_at": 1668523500000, "received_at": None, "receipts": []}
    XSD.assertValid(etree.fromstring(notice_alert(notice)))
    assert read_jsonl(to_jsonl([notice])) == [notice]


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00+00:00",
                                "9999-12-31T23:59:00-05:00"])
def test_a_date_time_at_the_ends_of_the_calendar_is_refused_naming_the_field(at: str
                                                                             ) -> None:
    _refused(_with(event_time={"at": at, "zone": "Europe/Warsaw"}), "event_time")


@pytest.mark.parametrize("zone", ["A" * 300, "Europe/" + "x" * 255, "Europe/Warsaw\n"])
def test_a_zone_name_that_cannot_be_a_zone_is_refused_naming_the_field(zone: str) -> None:
    error = _refused(_with(event_time={"at": "2022-11-15T15:40:00+01:00", "zone": zone}),
                     "event_time")
    assert "zone" in error.message


def test_an_offset_with_seconds_is_refused_cap_writes_hours_and_minutes() -> None:
    # Amsterdam kept +00:19:32 until 1937: a true offset CAP's ±hh:mm cannot write
    error = _refused(_with(event_time={"at": "1930-01-01T00:00:00+00:19:32",
                                       "zone": "Europe/Amsterdam"}), "event_time")
    assert "minutes" in error.message


def test_dst_edges_skipped_hour_refused_repeated_hour_taken_as_either_instant() -> None:
    _refused(_with(event_time={"at": "2022-03-27T02:30:00+01:00", "zone": "Europe/Warsaw"}),
             "event_time")
    for offset in ("+02:00", "+01:00"):  # 02:30 happened twice on 30 October 2022
        _exported(_with(event_time={"at": f"2022-10-30T02:30:00{offset}",
                                    "zone": "Europe/Warsaw"}))
    # fractions of a second are taken, and CAP still gets whole seconds
    _exported(_with(event_time={"at": "2022-11-15T15:40:00.123456+01:00",
                                "zone": "Europe/Warsaw"}))


@pytest.mark.parametrize("bad", [chr(0xD800), chr(0xDCFF), "\ufffe", "\uffff", "\x85", "\x9b",
                                 "\u202e", "\u202d", "\u2066", "\u2069", "\x00"])
def test_unsafe_characters_in_free_text_and_names_are_refused(bad: str) -> None:
    _refused(_with(description=f"seen {bad}near the grain dryer"), "description")
    _refused(_with(place={"name": f"Przew{bad}odów", "lat": "50.47", "lon": "23.93"}),
             "place")


def test_odd_but_safe_text_goes_through_every_export() -> None:
    text = ("انفجار <b>&amp;</b> ]]> \"quoted\" 'x'\nline two \u2028 \u200f emoji 🚀 "
            "\u200e end")
    _exported(_with(description=text,
                    place={"name": "Przewodów <&>", "lat": "-90", "lon": "180"}))
    _exported(_with(place={"name": "Pole", "lat": "90.0000000", "lon": "-180"}))


@pytest.mark.parametrize("count", ["\u00b2", "\u00b34", "1e3", "+5", "-0"])
def test_a_console_count_in_anything_but_digits_is_refused_naming_it(count: str) -> None:
    with pytest.raises(model.FieldError) as caught:
        fields_from_form(TEMPLATE, {"f.killed": count})
    assert caught.value.field == "killed"


def test_a_console_count_in_arabic_indic_digits_is_read_as_its_number() -> None:
    """The edges read every numeral system's digits (issue 15); what is signed is ASCII."""
    assert fields_from_form(TEMPLATE, {"f.killed": "\u0661\u0662"}
                            )["killed"] == 12


@pytest.mark.parametrize("lat", ["\u0665\u0660.\u0664\u0667", "\uff15\uff10.47", "50.\uff147"])
def test_degrees_in_other_digits_are_refused_cap_and_readers_take_ascii(lat: str) -> None:
    _refused(_with(place={"name": "Przewodów", "lat": lat, "lon": "23.93"}), "place")
    _refused(_with(place={"name": "Przewodów", "lat": "50.47", "lon": "23.93",
                          "radius_km": "\u0665"}), "place")
    # the command line is an edge: it reads other digits; the signed value is ASCII
    assert model.parse_text(TEMPLATE.field("killed"), "\u0661\u0662") == 12  # type: ignore[arg-type]


def test_a_console_local_time_in_the_skipped_hour_is_refused_in_local_terms() -> None:
    form = {"f.event_time.at": "2022-03-27T02:30", "f.event_time.zone": "Europe/Warsaw"}
    with pytest.raises(model.FieldError) as caught:
        fields_from_form(TEMPLATE, form)
    assert caught.value.field == "event_time"
    assert "does not exist" in caught.value.message  # not "the offset of …+01:00"
    assert "+01:00" not in caught.value.message
    taken = fields_from_form(TEMPLATE, {**form, "f.event_time.at": "2022-03-27T03:30"})
    assert taken["event_time"]["at"] == "2022-03-27T03:30:00+02:00"


def test_right_to_left_names_and_text_are_isolated_for_left_to_right_readers() -> None:
    """An Arabic place name in an English line would take the coordinates after it into
    its right-to-left run ("(50.47" drawn on the wrong side) unless isolated."""
    checked = model.validate(TEMPLATE, _with(
        place={"name": "مخيم الأمل", "lat": "50.47", "lon": "23.93"},
        description="سقط صاروخ 2 قتلى"))
    for lang in ("en", "ru", "uk", "pl"):
        text = render(TEMPLATE, checked, lang, original="ar").as_text()
        assert "\u2068مخيم الأمل\u2069 (" in text
        assert "\u2068سقط صاروخ 2 قتلى\u2069" in text
    latin = render(TEMPLATE, model.validate(TEMPLATE, PRZEWODOW), "en").as_text()
    assert "\u2068" not in latin  # left-to-right text needs nothing


def test_a_console_zone_name_the_file_system_refuses_is_refused_naming_the_field() -> None:
    with pytest.raises(model.FieldError) as caught:
        fields_from_form(TEMPLATE, {"f.event_time.at": "2022-11-15T15:40",
                                    "f.event_time.zone": "Z" * 300})
    assert caught.value.field == "event_time"


def test_jsonl_written_by_an_editor_with_a_byte_order_mark_or_crlf_reads_back() -> None:
    items = [{"a": "x\u2028y", "b": "\u202b"}, {"c": 1}]
    text = "\ufeff" + to_jsonl(items).replace("\n", "\r\n")
    assert read_jsonl(text) == items
