"""Digits of other numeral systems are read at the edges and never signed: the CLI's
``--field`` reads a count and coordinates typed with Arabic-Indic digits as ASCII ones,
and the check of what is sent refuses non-ASCII digits (one spelling of a number)."""

from __future__ import annotations

import pytest

from hotline.forms import model
from hotline.numerals import ascii_digits

AR_50_47 = "\u0665\u0660\u066b\u0664\u0667"  # 50.47, Arabic-Indic with U+066B


def test_ascii_digits_reads_arabic_decimal_separator() -> None:
    assert ascii_digits(AR_50_47) == "50.47"
    assert ascii_digits("\u0663\u0668\u0668 \u0664\u0665\u0668") == "388458"


def test_cli_field_reads_arabic_indic_digits() -> None:
    template = model.latest("incident-notification")
    killed, place = template.field("killed"), template.field("place")
    assert killed is not None
    assert place is not None
    assert model.parse_text(killed, "\u0662") == 2
    assert model.parse_text(place, f"Przewodów@{AR_50_47},23.93~\u0665") == {
        "name": "Przewodów", "lat": "50.47", "lon": "23.93", "radius_km": "5"}


def test_signed_values_hold_ascii_digits_only() -> None:
    place = model.latest("incident-notification").field("place")
    assert place is not None
    with pytest.raises(model.FieldError) as exc:
        model.check_value(place, {"name": "P", "lat": "\u0665\u0660", "lon": "23.93"})
    assert exc.value.field == "place"
    with pytest.raises(model.FieldError):
        model.check_value(place, {"name": "P", "lat": "50", "lon": "23",
                                  "radius_km": "\u0665"})
