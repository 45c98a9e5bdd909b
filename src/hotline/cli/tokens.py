"""``hotline token``: the administrator's token file, and per-operator API tokens.

Bare ``hotline token`` rotates the token file in the node directory — the local
administrator's, which the CLI on the node's own machine uses and which may act for any
operator. ``issue``, ``list`` and ``revoke`` manage tokens bound to one operator each
(:mod:`hotline.authz.tokens`); they write the node's database directly, like
``hotline operator``, so they work whether or not the node runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hotline.cli.common import DirOption, JsonOption, out, print_json
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError

token_app = typer.Typer(invoke_without_command=True,
                        help="Rotate the administrator's token (bare `hotline token`), or "
                             "manage per-operator API tokens.")


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@token_app.callback()
def token(ctx: typer.Context,
          node_dir: Annotated[Path | None, typer.Option(
              "--dir", envvar="HOTLINE_DIR", help="Node directory (default: $HOTLINE_DIR).",
              show_default=False)] = None) -> None:
    """Rotate the administrator's token file (a running node accepts only the new one at
    once); with a subcommand, manage per-operator API tokens."""
    if ctx.invoked_subcommand is not None:
        return
    from hotline.nodedir.config import TOKEN_NAME, load_config
    from hotline.nodedir.token import write_token

    if node_dir is None:
        raise HotlineError("bad-option", "give the node directory with --dir or HOTLINE_DIR",
                           status=2)
    load_config(node_dir)
    write_token(node_dir / TOKEN_NAME)
    out.print(f"New operator token written to {escape(str(node_dir / TOKEN_NAME))}")


@token_app.command("issue")
def token_issue(node_dir: DirOption,
                operator: Annotated[str, typer.Option(
                    help="Operator id from the directory; the token acts only as them, "
                         "in the roles the directory gives them.")],
                as_json: JsonOption = False) -> None:
    """Issue an API token bound to one operator; it is printed once and stored hashed."""
    from hotline.authz.tokens import issue_token

    row, text = issue_token(node_dir, operator)
    if as_json:
        print_json({"id": row.id, "operator": row.operator, "token": text})
        return
    out.print(f"API token [bold]{row.id}[/] for {escape(row.operator)} (shown only now; "
              "send it as `Authorization: Bearer ...`):", highlight=False)
    out.print(text, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Per-operator API tokens: id, operator, created, last used, revoked."""
    from hotline.authz.tokens import list_tokens

    tokens = list_tokens(node_dir)
    if as_json:
        print_json({"tokens": [{"id": t.id, "operator": t.operator,
                                "created_at": t.created_at, "last_used_at": t.last_used_at,
                                "revoked_at": t.revoked_at} for t in tokens]})
        return
    show(out, [Col("id", keep=True), Col("operator", keep=True),
               Col("created (UTC)", keep=True, drop=1), Col("last used (UTC)", keep=True),
               Col("revoked (UTC)", keep=True)],
         [[t.id, t.operator, _time(t.created_at), _time(t.last_used_at), _time(t.revoked_at)]
          for t in tokens])


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id, from "
                                                              "`hotline token list`.")],
                 node_dir: DirOption) -> None:
    """Revoke a per-operator API token; a running node refuses it at once."""
    from hotline.authz.tokens import revoke_token

    row = revoke_token(node_dir, token_id)
    out.print(f"API token {row.id} of {escape(row.operator)} revoked.", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
