"""The scenario's notification from PL-GS, shared by the tests of formatted
notifications (golden renderings, CAP, JSON Lines, two nodes)."""

from __future__ import annotations

from typing import Any

from hotline.scenario import INCIDENT_NOTICE, INCIDENT_NOTICE_LANG

#: PL-GS's incident notification, as the demo sends it (hotline.scenario): missile
#: impact at Przewodów, 15 November 2022, 15:40 CET, 50.47° N 23.93° E, two killed
PRZEWODOW: dict[str, Any] = dict(INCIDENT_NOTICE)
PRZEWODOW_LANG = INCIDENT_NOTICE_LANG


def valid_value(ftype: str, enum_values: list[str] | None = None) -> Any:
    """A valid value of a field of ``ftype``."""
    return {"place": {"name": "Przewodów", "lat": "50.47", "lon": "23.93"},
            "datetime": {"at": "2022-11-15T15:40:00+01:00", "zone": "Europe/Warsaw"},
            "count": 2, "ref": "0" * 31 + "1", "text": "a free text",
            "enum": (enum_values or [""])[0]}[ftype]


#: per field type, values each refused (and why, for the reader of a failing test)
INVALID: dict[str, list[Any]] = {
    "place": [{"name": "X", "lat": "91", "lon": "23.93"},
              {"name": "X", "lat": "50.47", "lon": "-180.5"},
              {"name": "X", "lat": "north", "lon": "1"},
              {"name": "", "lat": "1", "lon": "1"},
              {"name": "X", "lat": 50, "lon": "1"},
              {"name": "X", "lat": "1", "lon": "1", "radius_km": "0"},
              {"name": "X", "lat": "1"}, "Przewodów"],
    "datetime": [{"at": "2022-11-15T15:40:00", "zone": "Europe/Warsaw"},
                 {"at": "2022-11-15T15:40:00+02:00", "zone": "Europe/Warsaw"},
                 {"at": "2022-11-15T15:40:00+01:00", "zone": "Mars/Olympus"},
                 {"at": "yesterday", "zone": "UTC"}, "2022-11-15T15:40:00+01:00"],
    "count": [-1, 1.5, "2", True, 10**9 + 1, None],
    "enum": ["nonsense", 1, ""],
    "ref": ["1234", "G" * 32, 7],
    "text": ["", "   ", "a\x00b", "x" * 2001, 5],
}
