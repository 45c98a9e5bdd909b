"""The Przewodów scenario's directories, from the real-time examples in ``examples/``.

``examples/directories/<PARTY>.toml`` holds what each party would really apply (roles,
operators, rosters, duty schedules, chains, link policies, with comments). ``hotline
demo`` and the tests read those files and scale them: :func:`scale_directory` divides
every duration of the settings, chains and link policies by ``speed`` (``--speed 60``: a
two-minute step takes two seconds), so the same scenario runs in real time, in a demo, or
in a test with sub-second deadlines. Duty schedules run in real local time: they are
never scaled.

The examples are read from the source tree (an editable install or a checkout, as the
README's commands use); :class:`FileNotFoundError` names the path otherwise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

PARTIES = ("US-JS", "RU-GS", "UA-GS", "PL-GS")
LINKS = (("US-JS", "RU-GS"), ("US-JS", "UA-GS"), ("US-JS", "PL-GS"), ("PL-GS", "UA-GS"))

#: The examples: ``<repository>/examples``.
EXAMPLES: Final = Path(__file__).resolve().parents[2] / "examples"

#: The duration fields scaled by ``speed`` (schedules' ``turn`` and ``handover`` are not;
#: nor is ``gap_alarm_horizon``, which looks ahead over schedules).
SCALED: Final = ("staffed_within", "repeat_every", "wait", "deliver_within")

#: The least a scaled ``deliver_within`` becomes, in real ms: the scenario's minutes
#: compress, a network's round trips and a busy machine's scheduling do not (at
#: ``--speed 600`` the example's 30 s would be 50 ms, and a call would go undeliverable
#: before the callee's node had a chance to store it).
DELIVERY_FLOOR_MS: Final = 5_000

_DURATION_LINE: Final = re.compile(
    r'^(?P<key>' + "|".join(SCALED) + r')(?P<eq>\s*=\s*)"(?P<value>[^"]*)"', re.M)
_HEADER: Final = re.compile(r"^\[\[?(?P<name>[^\]]+)\]\]?\s*$", re.M)


def example_path(party: str) -> Path:
    """The real-time example directory file of ``party``."""
    if party not in PARTIES:
        raise ValueError(f"{party} is not a party of the scenario")
    return EXAMPLES / "directories" / f"{party}.toml"


def example_text(party: str) -> str:
    return example_path(party).read_text(encoding="utf-8")


def peers_of(party: str) -> tuple[str, ...]:
    """The parties ``party`` is linked with in the scenario."""
    return tuple(b if a == party else a for a, b in LINKS if party in (a, b))


def scale_directory(text: str, speed: float, deliver_within_ms: int | None = None) -> str:
    """A directory file with the durations of :data:`SCALED` divided by ``speed``
    (written in milliseconds, at least 1; ``deliver_within`` at least
    :data:`DELIVERY_FLOOR_MS` or its unscaled value if that is less), everything else
    (comments, schedules) as it is.

    ``deliver_within_ms``, if given, replaces every ``deliver_within`` (real time, not
    scaled). Speed 1 without an override returns ``text`` itself."""
    from hotline.calls.directory import parse_duration

    if speed <= 0:
        raise ValueError("speed must be positive")
    if speed == 1 and deliver_within_ms is None:
        return text

    def scaled(match: re.Match[str]) -> str:
        if match["key"] == "deliver_within" and deliver_within_ms is not None:
            ms = deliver_within_ms
        elif match["key"] == "deliver_within":
            real = parse_duration(match["value"])
            ms = max(min(real, DELIVERY_FLOOR_MS), round(real / speed))
        else:
            ms = max(1, round(parse_duration(match["value"]) / speed))
        return f'{match["key"]}{match["eq"]}"{ms}ms"'

    return _DURATION_LINE.sub(scaled, text)


def only_links(text: str, peers: Iterable[str]) -> str:
    """``text`` without the ``[links.X]`` policies (and their sub-tables) of parties not
    in ``peers``: for a node linked with only some of the scenario's parties."""
    keep = set(peers)
    out: list[str] = []
    dropping = False
    for line in text.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header is not None:
            parts = header["name"].strip().split(".")
            dropping = parts[0] == "links" and len(parts) > 1 and parts[1] not in keep
        if not dropping:
            out.append(line)
    return "".join(out)


def directory_toml(party: str, speed: float = 1.0, deliver_within_ms: int | None = None,
                   peers: Iterable[str] | None = None) -> str:
    """The directory file of ``party`` in the scenario: its example, durations divided by
    ``speed`` (``deliver_within_ms`` overrides the links' delivery deadline, in real
    time), with policies for ``peers`` only if given (default: all its scenario links)."""
    text = scale_directory(example_text(party), speed, deliver_within_ms)
    return text if peers is None else only_links(text, peers)


@functools.cache
def _example(party: str) -> tuple[tuple[str, ...], str]:
    from hotline.calls.directory import ON_DUTY, parse_directory

    directory = parse_directory(example_text(party), example_path(party).name)
    on_duty = tuple(e.operator for e in directory.roster if e.status == ON_DUTY)
    [role] = sorted(directory.schedules)
    return on_duty, role


def on_duty_operators(party: str) -> list[str]:
    """The operators the scenario's roster has on duty at ``party`` (the demo keeps them
    present); who is on watch in the duty role (:func:`duty_role`) the schedule says."""
    return list(_example(party)[0])


def duty_role(party: str) -> str:
    """The role ``party`` staffs by rotation (its duty desk)."""
    return _example(party)[1]


#: the incident PL-GS opens, and whom it invites
INCIDENT_TITLE = "Przewodów impact"
INCIDENT_MEMBERS = ("US-JS", "UA-GS")
#: PL-GS's incident notification (template ``incident-notification``, written in Polish):
#: missile impact at Przewodów, 15 November 2022, 15:40 Europe/Warsaw, 50.47° N 23.93° E,
#: two killed
INCIDENT_NOTICE: dict[str, object] = {
    "event": "missile-impact",
    "event_time": {"at": "2022-11-15T15:40:00+01:00", "zone": "Europe/Warsaw"},
    "place": {"name": "Przewodów", "lat": "50.47", "lon": "23.93"},
    "killed": 2,
    "urgency": "Immediate",
    "severity": "Severe",
    "certainty": "Observed",
    "confidence": "high",
    "description": "Eksplozja na terenie suszarni zboża; zginęło dwóch mężczyzn.",
}
INCIDENT_NOTICE_LANG = "pl"
#: (scenario time, party key, kind, confidence, text): the assessments side by side
INCIDENT_ASSESSMENTS = (
    ("+2 h", "pl", "assessment", "low",
     "Fragments recovered at the site are consistent with an air-defence missile."),
    ("next morning", "us", "assessment", "moderate",
     "Preliminary assessment: an air-defence missile fired to intercept an incoming "
     "missile; no indication of a deliberate attack on Polish territory."),
    ("next morning", "ua", "claim", "moderate",
     "Statement: Ukrainian air defence was engaging incoming missiles in the region at "
     "the time; UA asks for access to the site for a joint investigation."),
)
