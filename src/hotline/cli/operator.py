"""``hotline operator``: console accounts of the directory's operators.

Every command writes the node's database directly (like ``roles apply``), so it works
whether or not the node is running, and a running node sees the change at the next
log-in. Passwords are never taken as arguments (they would end up in the shell history
and in ``ps``): they are asked for twice without echo, or read as one line from stdin
with ``--password-stdin`` for scripts.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from hotline.cli.argv import read_stdin_line
from hotline.cli.common import DirOption, JsonOption, out, print_json
from hotline.cli.tables import Col, show

operator_app = typer.Typer(no_args_is_help=True,
                           help="Operator accounts for the web console (password + TOTP).")

OperatorArg = Annotated[str, typer.Argument(help="Operator id from the directory, e.g. "
                                                 "nmcc-1.")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password as one line from stdin instead of asking.")]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return read_stdin_line()
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _show_enrolment(operator: str, secret: str, uri: str, as_json: bool) -> None:
    from hotline.accounts.totp import qr_terminal

    if as_json:
        print_json({"operator": operator, "secret": secret, "uri": uri})
        return
    out.print(f"Scan this code with {escape(operator)}'s authenticator app, or type the "
              "secret in. It is shown only now.", highlight=False)
    sys.stdout.write(qr_terminal(uri))
    out.print(f"  secret  [bold]{secret}[/]", highlight=False)
    out.print(f"  uri     {escape(uri)}", highlight=False, soft_wrap=True)


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@operator_app.command("add")
def operator_add(operator: OperatorArg, node_dir: DirOption,
                 password_stdin: PasswordStdin = False, as_json: JsonOption = False) -> None:
    """Create the console account of an operator of the directory: a password, and a new
    TOTP secret for their authenticator app (shown once, with its QR code)."""
    from hotline.accounts.offline import add_operator, ensure_addable

    ensure_addable(node_dir, operator)
    enrolment = add_operator(node_dir, operator, _read_password(password_stdin))
    if not as_json:
        out.print(f"Console account for [bold]{escape(operator)}[/] created.")
    _show_enrolment(enrolment.operator, enrolment.secret, enrolment.uri, as_json)


@operator_app.command("passwd")
def operator_passwd(operator: OperatorArg, node_dir: DirOption,
                    password_stdin: PasswordStdin = False) -> None:
    """Set a new password for an operator; their console sessions end (a lock-out
    stays until `hotline operator unlock`)."""
    from hotline.accounts.offline import set_password

    ended = set_password(node_dir, operator, _read_password(password_stdin))
    out.print(f"Password of {escape(operator)} changed; {ended} console session(s) ended.",
              highlight=False)


@operator_app.command("totp")
def operator_totp(operator: OperatorArg, node_dir: DirOption,
                  as_json: JsonOption = False) -> None:
    """Give an operator a new TOTP secret (e.g. a lost phone): the old one stops working
    and their console sessions end."""
    from hotline.accounts.offline import reset_totp

    enrolment = reset_totp(node_dir, operator)
    if not as_json:
        out.print(f"New authenticator secret for [bold]{escape(operator)}[/]; the old one "
                  "no longer works.")
    _show_enrolment(enrolment.operator, enrolment.secret, enrolment.uri, as_json)


@operator_app.command("unlock")
def operator_unlock(operator: OperatorArg, node_dir: DirOption) -> None:
    """Lift a lock-out after failed log-ins and forget the failures."""
    from hotline.accounts.offline import unlock

    failures = unlock(node_dir, operator)
    out.print(f"{escape(operator)} unlocked ({failures} failed attempt(s) forgotten).",
              highlight=False)


@operator_app.command("list")
def operator_list(node_dir: DirOption, as_json: JsonOption = False) -> None:
    """Console accounts, with the operator's name and roles and any lock-out."""
    from hotline.accounts.offline import list_accounts

    rows = list_accounts(node_dir)
    if as_json:
        print_json({"accounts": rows})
        return
    now = datetime.now(UTC).timestamp() * 1000
    cells = []
    for r in rows:
        locked = r["locked_until"] if r["locked_until"] and r["locked_until"] > now else None
        name = r["name"] if r["in_directory"] else "(not in the directory)"
        cells.append([r["operator"], name, ", ".join(r["roles"]), str(r["failures"]),
                      _time(locked), _time(r["created_at"])])
    show(out, [Col("operator", keep=True), Col("name"), Col("roles", drop=2),
               Col("failures", keep=True), Col("locked until (UTC)", keep=True),
               Col("created (UTC)", keep=True, drop=1)], cells)


def register(app: typer.Typer) -> None:
    app.add_typer(operator_app, name="operator")
