"""What every command module of the CLI shares: consoles, exit codes, common options."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from hotline.cli.client import OperatorClient

out = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_ERROR = 1
EXIT_USAGE = 2

DirOption = Annotated[Path, typer.Option("--dir", envvar="HOTLINE_DIR",
                                         help="Node directory (default: $HOTLINE_DIR).",
                                         show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def client(node_dir: Path) -> OperatorClient:
    from hotline.cli.client import OperatorClient
    from hotline.nodedir.config import load_config

    return OperatorClient(node_dir, load_config(node_dir))
