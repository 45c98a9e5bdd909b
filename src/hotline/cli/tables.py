"""Every table the CLI prints, laid out by one policy.

Some columns hold what a person acts on or copies: ids, states, times, counts. They are
*kept*: never cut with "…" and never wrapped. The others wrap (long text) and, when even
wrapped they leave no room for the kept ones, are dropped, least important first. So an
80-column terminal shows fewer columns, never a truncated id (``--json`` has them all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: the narrowest a wrapping column is squeezed to before columns are dropped
MIN_WRAP = 20
#: the longest word a wrapping column keeps whole when it can (a 32-digit id fits)
MAX_WORD = 40


@dataclass(frozen=True)
class Col:
    """One column. ``keep``: never cut nor wrapped (ids, states, times, numbers).
    ``drop``: for the others, the order in which they go when the table does not fit
    (1 first, then 2, ...; 0 never: it wraps instead). Cells are shown as they are (a
    ``str`` is never read as markup; style one with a :class:`~rich.text.Text`)."""

    header: str
    keep: bool = False
    drop: int = 0
    justify: str = "left"


Cell = str | Text


def _width(cell: Cell) -> int:
    plain = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in plain.splitlines()), default=0)


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _longest_word(cell: Cell) -> int:
    plain = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(word) for word in plain.split()), default=0)


def _needed(col: Col, cells: list[Cell]) -> int:
    """The width ``col`` needs at the least: all of a kept column; for the rest,
    :data:`MIN_WRAP` cells, or its longest word up to :data:`MAX_WORD` (an id or a
    command in a message is not broken while a droppable column could make room)."""
    widest = max([_width(c) for c in cells] + [cell_len(col.header)])
    if col.keep:
        return widest
    word = min(MAX_WORD, max([_longest_word(c) for c in cells], default=0))
    return min(widest, max(MIN_WRAP, word))


def fit(console: Console, cols: Sequence[Col], rows: Sequence[Sequence[Cell]],
        **table_options: Any) -> Table:
    """A table of ``rows`` (one cell per column of ``cols``) that fits ``console``'s
    width: optional columns are dropped (``drop`` order) until the kept ones fit whole
    and each wrapping one has :data:`MIN_WRAP` cells; an empty wrapping column is left
    out.
    If even the kept ones alone do not fit, the table is as wide as they need (the
    terminal wraps the line; nothing is cut)."""
    columns = [[row[i] for row in rows] for i in range(len(cols))]
    # a column of text with nothing in it (no reasons, say) only takes room
    chosen = [i for i, col in enumerate(cols)
              if col.keep or not rows or any(_width(c) for c in columns[i])]

    def total(indexes: list[int]) -> int:  # cells + padding (2) + borders (1) each, + 1
        return sum(_needed(cols[i], columns[i]) + 3 for i in indexes) + 1

    for i in sorted((i for i in chosen if cols[i].drop), key=lambda i: cols[i].drop):
        if total(chosen) <= console.width:
            break
        chosen.remove(i)
    width = total(chosen)
    table = Table(**table_options, width=width if width > console.width else None)
    for i in chosen:
        col = cols[i]
        table.add_column(col.header, no_wrap=col.keep, justify=col.justify,  # type: ignore[arg-type]
                         min_width=_needed(col, columns[i]) if col.keep else None,
                         overflow="fold")
    for row in rows:  # text as it is: a "[" in a message is not markup
        table.add_row(*(_text(row[i]) for i in chosen))
    return table


def show(console: Console, cols: Sequence[Col], rows: Sequence[Sequence[Cell]],
         **table_options: Any) -> None:
    """Print :func:`fit`'s table; a table wider than the terminal is not cropped."""
    console.print(fit(console, cols, rows, **table_options), crop=False)
