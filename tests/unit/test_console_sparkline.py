"""The round-trip sparkline: answered rounds joined, lost rounds marked, the label
escaped, numbers only otherwise."""

from __future__ import annotations

import re

from hotline.console.sparkline import HEIGHT, WIDTH, sparkline


def test_lost_rounds_break_the_line_and_are_marked() -> None:
    samples = [[0, 10.0], [60_000, 20.0], [120_000, None], [180_000, 5.0], [240_000, 15.0]]
    svg = str(sparkline(samples, "rtt"))
    assert svg.count("<polyline") == 2
    assert svg.count('class="lost"') == 1
    xs = [float(x) for x in re.findall(r'([\d.]+),[\d.]+', svg)]
    assert max(xs) == WIDTH  # the latest round at the right edge
    ys = [float(y) for y in re.findall(r'[\d.]+,([\d.]+)', svg)]
    assert all(0 <= y <= HEIGHT for y in ys)
    assert min(ys) == HEIGHT - 1 - (HEIGHT - 3)  # the largest round trip at the top


def test_a_single_answer_is_a_dot_and_nothing_is_empty() -> None:
    assert "<circle" in str(sparkline([[0, 3.0]], "rtt"))
    empty = str(sparkline([], "no tests"))
    assert "<polyline" not in empty
    assert "no tests" in empty


def test_the_label_is_escaped() -> None:
    svg = str(sparkline([[0, 1.0]], '<script>alert("x")</script>'))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
