"""Templates as data, field checks and renderings of formatted notifications."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.forms import model
from hotline.forms.render import render
from tests.forms_scenario import INVALID, PRZEWODOW, PRZEWODOW_LANG, valid_value

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
TEMPLATES = sorted(model.templates().values(), key=lambda t: t.id)
EXPECTED = {"incident-notification", "urgent-contact", "assessment-update",
            "launch-notification", "link-test", "attribution-query"}


def _valid(t: model.Template) -> dict[str, Any]:
    enums = model.common()["enums"]
    return {f.name: valid_value(f.type, list(enums[f.enum]) if f.enum else None)
            for f in t.fields}


def _cases() -> list[tuple[str, str, str]]:
    return [(t.id, f.name, f.type) for t in TEMPLATES for f in t.fields]


def test_every_template_ships_in_every_language() -> None:
    assert {t.id for t in TEMPLATES} == EXPECTED
    for t in TEMPLATES:
        assert set(t.title) == set(model.LANGUAGES)
        for f in t.fields:
            assert set(f.label) == set(model.LANGUAGES), (t.id, f.name)
    for values in model.common()["enums"].values():
        for words in values.values():
            assert set(words) == set(model.LANGUAGES)


@pytest.mark.parametrize(("template_id", "name", "ftype"), _cases())
def test_every_field_is_refused_when_missing_or_invalid(template_id: str, name: str,
                                                        ftype: str) -> None:
    t = model.latest(template_id)
    fields = _valid(t)
    assert model.validate(t, fields)[name] is not None
    f = t.field(name)
    assert f is not None
    del fields[name]
    if f.required:
        with pytest.raises(model.FieldError) as missing:
            model.validate(t, fields)
        assert (missing.value.error_id, missing.value.field) == ("missing-field", name)
        assert name in missing.value.message
    else:
        assert name not in model.validate(t, fields)
    for bad in INVALID[ftype]:
        if bad is None and not f.required:
            continue  # an optional field given as null is simply absent
        with pytest.raises(model.FieldError) as invalid:
            model.validate(t, {**fields, name: bad})
        assert invalid.value.field == name, bad
        assert invalid.value.to_dict()["field"] == name


def test_an_unknown_field_or_template_is_refused_by_name() -> None:
    t = model.latest("incident-notification")
    with pytest.raises(model.FieldError) as exc:
        model.validate(t, {**PRZEWODOW, "shooter": "RU"})
    assert (exc.value.error_id, exc.value.field) == ("unknown-field", "shooter")
    with pytest.raises(model.TemplateError, match="no template 'weather'"):
        model.latest("weather")
    with pytest.raises(model.TemplateError, match="version 9"):
        model.get("incident-notification", 9)


@given(lat=st.decimals(min_value=-200, max_value=200, places=2, allow_nan=False),
       lon=st.decimals(min_value=-200, max_value=200, places=2, allow_nan=False))
def test_coordinates_are_taken_exactly_within_range(lat: Any, lon: Any) -> None:
    t = model.latest("incident-notification")
    place = {"name": "P", "lat": str(lat), "lon": str(lon)}
    inside = -90 <= lat <= 90 and -180 <= lon <= 180
    if inside:
        assert model.validate(t, {**PRZEWODOW, "place": place})["place"] == place
    else:
        with pytest.raises(model.FieldError) as exc:
            model.validate(t, {**PRZEWODOW, "place": place})
        assert exc.value.field == "place"


def test_command_line_values_parse_to_field_values() -> None:
    t = model.latest("incident-notification")
    place, when, killed = (t.field(n) for n in ("place", "event_time", "killed"))
    assert place is not None
    assert when is not None
    assert killed is not None
    assert model.parse_text(place, "Przewodów@50.47,23.93~2") == {
        "name": "Przewodów", "lat": "50.47", "lon": "23.93", "radius_km": "2"}
    assert model.parse_text(when, "2022-11-15T15:40+01:00[Europe/Warsaw]") == {
        "at": "2022-11-15T15:40+01:00", "zone": "Europe/Warsaw"}
    assert model.parse_text(killed, "2") == 2
    with pytest.raises(model.FieldError, match="'killed'"):
        model.parse_text(killed, "two")


@pytest.mark.parametrize("lang", model.LANGUAGES)
def test_the_scenario_notification_renders_as_its_golden_file(lang: str) -> None:
    t = model.latest("incident-notification")
    shown = render(t, model.validate(t, PRZEWODOW), lang, original=PRZEWODOW_LANG)
    golden = GOLDEN / f"incident-notification.{lang}.txt"
    assert shown.as_text() == golden.read_text(encoding="utf-8")
    assert shown.dir == ("rtl" if lang == "ar" else "ltr")
    free = [r for r in shown.rows if r.name == "description"]
    assert len(free) == 1
    assert not free[0].translated
    assert free[0].lang == "pl"
    assert free[0].text == PRZEWODOW["description"]  # never translated
