"""Duty schedules: layers of rotations in a time zone, overrides, the final schedule.

Pure: no store, web or node imports. The directory's checker calls :func:`parse_schedule`
for each ``[schedules.<role>]`` table; everyone who asks "who holds this role, when?"
(escalation, desk staffing, CLI, API, console) asks :func:`final_schedule` or its views
:func:`holders_at` and :func:`gaps`. The rules, DST handling and the TOML shape are in
docs/schedules.md. The package, by part: :mod:`.model` (dataclasses), :mod:`.localtime`
(local wall-clock time ↔ instants), :mod:`.final` (the computation), :mod:`.parse` (the
directory's table) and :mod:`.ical` (iCalendar out and in).
"""

from hotline.schedules.final import (
    Base,
    final_schedule,
    gaps,
    hand_overs,
    holders_at,
    layer_turns,
    unaccepted_gaps,
    upcoming_gaps,
)
from hotline.schedules.ical import CalendarError, export_ical, import_layers
from hotline.schedules.localtime import to_local, to_ms
from hotline.schedules.model import (
    DAY_NAMES,
    GAP,
    ROSTER,
    AcceptedGap,
    Layer,
    Override,
    Restriction,
    Schedule,
    Shift,
    Turn,
)
from hotline.schedules.parse import gap_problems, parse_schedule, schedule_to_table

__all__ = [
    "DAY_NAMES",
    "GAP",
    "ROSTER",
    "AcceptedGap",
    "Base",
    "CalendarError",
    "Layer",
    "Override",
    "Restriction",
    "Schedule",
    "Shift",
    "Turn",
    "export_ical",
    "final_schedule",
    "gap_problems",
    "gaps",
    "hand_overs",
    "holders_at",
    "import_layers",
    "layer_turns",
    "parse_schedule",
    "schedule_to_table",
    "to_local",
    "to_ms",
    "unaccepted_gaps",
    "upcoming_gaps",
]
