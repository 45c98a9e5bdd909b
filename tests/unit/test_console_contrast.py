"""WCAG 2.2 AA contrast of every foreground/background pair the console's CSS uses,
computed from the colours in console.css (so changing a colour re-checks it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "src" / "hotline" / "console" / "static"
       / "console.css").read_text()
PALETTE = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;", CSS))

#: (foreground, background, minimum): 4.5 for text, 3 for focus rings and borders that
#: carry meaning (WCAG 1.4.3 and 1.4.11).
PAIRS = [
    ("fg", "bg", 4.5), ("fg", "panel", 4.5), ("muted", "bg", 4.5), ("muted", "panel", 4.5),
    ("link", "bg", 4.5), ("link", "panel", 4.5),
    ("on-primary", "primary", 4.5), ("primary", "bg", 4.5), ("primary", "panel", 4.5),
    ("on-ok", "ok", 4.5), ("ok", "bg", 4.5), ("ok", "panel", 4.5),
    ("on-bad", "bad", 4.5), ("bad", "bg", 4.5),
    ("warn-fg", "warn-bg", 4.5), ("on-alarm", "alarm-bg", 4.5),
    ("focus", "bg", 3.0), ("focus", "panel", 3.0), ("border", "bg", 3.0),
    # the alarm banner: text, its kind, links and the focus ring on the warning colour
    ("fg", "warn-bg", 4.5), ("bad", "warn-bg", 4.5), ("muted", "warn-bg", 4.5),
    ("link", "warn-bg", 4.5), ("focus", "warn-bg", 3.0),
]


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_the_formula_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize(("fg", "bg", "minimum"), PAIRS)
def test_colour_pairs_meet_wcag_aa(fg: str, bg: str, minimum: float) -> None:
    ratio = contrast(PALETTE[fg], PALETTE[bg])
    assert ratio >= minimum, f"--{fg} on --{bg}: {ratio:.2f} < {minimum}"


def test_the_css_has_no_colour_outside_the_palette() -> None:
    """Every colour is a checked variable: a literal colour elsewhere escapes the test."""
    body = CSS.split("}", 1)[1]  # after :root
    assert not re.findall(r"#[0-9a-fA-F]{3,6}\b", body)
