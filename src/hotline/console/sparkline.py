"""A round-trip sparkline as inline SVG: no script and no library, numbers only.

The right edge is the latest test round, the left edge an hour before it (see
:data:`hotline.links.health.HISTORY_MS`); the height is scaled to the largest round trip
shown. Answered rounds are joined by lines; a run of lost rounds breaks the line and is
marked by a tick at the foot, so "no answer" never looks like "fast".
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from hotline.links.health import HISTORY_MS

WIDTH, HEIGHT = 120, 24


def sparkline(samples: Sequence[Sequence[float | None]], label: str) -> Markup:
    """``samples``: ``[wall-clock ms, rtt ms or None]`` oldest first (as ``status``
    carries them in ``rtt_last_hour``); ``label``: the accessible name, already
    translated."""
    points = [(int(at), rtt) for at, rtt in samples if at is not None]
    answered = [rtt for _, rtt in points if rtt is not None]
    top = max(answered, default=1.0) or 1.0
    last = points[-1][0] if points else 0
    runs: list[list[str]] = [[]]
    ticks: list[str] = []
    for at, rtt in points:
        x = WIDTH - (last - at) / HISTORY_MS * WIDTH
        if rtt is None:
            ticks.append(f'<line class="lost" x1="{x:.1f}" y1="{HEIGHT}" x2="{x:.1f}" '
                         f'y2="{HEIGHT - 5}"/>')
            if runs[-1]:
                runs.append([])
            continue
        y = HEIGHT - 1 - rtt / top * (HEIGHT - 3)
        runs[-1].append(f"{x:.1f},{y:.1f}")
    lines = [f'<polyline points="{" ".join(run)}"/>' if len(run) > 1 else
             f'<circle r="1.5" cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}"/>'
             for run in runs if run]
    return Markup(  # noqa: S704 - numbers we formatted and an escaped label only
        f'<svg class="sparkline" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<title>{escape(label)}</title>{"".join(lines)}{"".join(ticks)}</svg>')
