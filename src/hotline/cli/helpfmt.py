"""How every command's ``--help`` and usage line name their parameters.

The Typer release the CLI is built on shows a flag as ``--check <bool>`` (as if it took a
value) and a required argument as ``{call_id}`` in usage lines. :func:`tidy` walks the
whole command tree once, before it runs, and gives each parameter the conventional
names: a flag shows no value at all, an argument is ``CALL_ID`` (``[TEXT]`` when
optional), an option's value is ``INTEGER``, ``PATH``, ``TEXT``... (a repeatable one
too, not ``LIST[STR]``). Help texts are shown as written: ``[fields]`` in one is the
TOML table it names, not a style to apply and drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from typer.core import TyperArgument, TyperOption


class _Argument(TyperArgument):
    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if self.nargs != 1:
            name += "..."
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the argument's name says it (CALL_ID); "<str>" adds nothing


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None  # a flag takes no value
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).strip("<>")
        if label.startswith("list[") and label.endswith("]"):
            label = label[5:-1]  # a repeatable option still takes one value each time
        label = {"int range": "INTEGER", "float range": "FLOAT", "int": "INTEGER",
                 "str": "TEXT", "bool": "BOOLEAN"}.get(label, label.upper())
        return label + ("..." if self.nargs != 1 else "")


@dataclass(frozen=True)
class _HelpNames:
    """What a command asks of its context to make its ``--help`` option."""

    help_option_names: tuple[str, ...] = ("--help",)


def tidy(command: Any) -> None:
    """Give every parameter of ``command`` and its subcommands the conventional help
    names (in place)."""
    # the --help option is made once per command and kept: tidy it like the others
    make_help = getattr(command, "get_help_option", None)
    params = list(getattr(command, "params", []))
    if callable(make_help):
        params.append(make_help(_HelpNames()))
    for param in params:
        if isinstance(getattr(param, "help", None), str) and not getattr(
                param, "_hotline_escaped", False):
            param.help = escape(param.help)
            param._hotline_escaped = True  # tidy may run twice on one tree
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
            param.__class__ = _Argument
        elif isinstance(param, TyperOption):
            param.__class__ = _Option
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
