"""``hotline query`` and ``hotline queries``: attribution queries (docs/queries.md).

``hotline query ROLE@PARTY --as R --question "…" --deadline 30m [--about INCIDENT]``
asks; ``hotline query answer ID --as R --answer unknown --details "…"`` answers. Both
are one command (its first argument is an address or the word ``answer``) so that the
two read as the issue writes them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from hotline.cli.calls import AsOption, OperatorOption
from hotline.cli.common import DirOption, JsonOption, client, out, print_json
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError


def query(target: Annotated[str, typer.Argument(
              metavar="TARGET",
              help="Who to ask, ROLE@PARTY (e.g. cgs@RU-GS); or the word `answer` to "
                   "answer query ID.")],
          node_dir: DirOption, as_role: AsOption,
          query_id: Annotated[str | None, typer.Argument(
              metavar="ID", help="With `answer`: the query id.")] = None,
          question: Annotated[str | None, typer.Option(
              help="The question (asking).")] = None,
          deadline: Annotated[str | None, typer.Option(
              help="How long the callee has: 90s, 30m, 2h, 1d (asking).")] = None,
          about: Annotated[str | None, typer.Option(
              help="Incident id to link the query to (asking).")] = None,
          answer_: Annotated[str | None, typer.Option(
              "--answer", help="yes, no, unknown or will-not-answer (answering).")] = None,
          details: Annotated[str | None, typer.Option(
              help="What the answer rests on (answering).")] = None,
          operator: OperatorOption = None, as_json: JsonOption = False) -> None:
    """Ask a linked party's role a question with a response deadline, or answer one.
    The query rings the callee's chain like a call; the answer is signed."""
    if target == "answer":
        if query_id is None or answer_ is None:
            raise HotlineError("bad-query", "answer: give the query ID and --answer",
                               hint="hotline query answer ID --as ROLE --answer unknown "
                                    "--details \"…\"")
        body = client(node_dir).request(
            "POST", f"/api/v1/queries/{query_id}/answer",
            json={"as": as_role, "operator": operator, "answer": answer_, "details": details})
        if as_json:
            print_json(body)
        else:
            out.print(f"Answered {escape(answer_)} as {escape(as_role)}; signed and sent.",
                      highlight=False)
        return
    if query_id is not None or answer_ is not None or details is not None:
        raise HotlineError("bad-query", "asking takes ROLE@PARTY, --question and --deadline; "
                                        "--answer and --details are for `query answer ID`")
    if question is None or deadline is None:
        field = "question" if question is None else "deadline"
        raise HotlineError(f"bad-{field}", f"{field}: a query needs --{field}")
    body = client(node_dir).request(
        "POST", "/api/v1/queries", json={"to": target, "as": as_role, "question": question,
                                         "deadline": deadline, "about": about})
    if as_json:
        print_json(body)
        return
    typer.echo(body["id"])
    out.print(f"Asked {escape(target)} as {escape(as_role)}; deadline {escape(deadline)}. "
              f"Follow it with `hotline queries --dir {node_dir}`.", highlight=False)


def queries(node_dir: DirOption, as_json: JsonOption = False,
            limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Queries, newest first: question, status (pending, answered, will-not-answer,
    unanswered, answered-late, ...) and the signed answer."""
    rows: list[dict[str, Any]] = client(node_dir).request(
        "GET", "/api/v1/queries", params={"limit": limit})["queries"]
    if as_json:
        print_json({"queries": rows})
        return
    if not rows:
        out.print("No queries.")
        return
    show(out, [Col("id", keep=True), Col("way", keep=True), Col("status", keep=True),
               Col("question"), Col("answer", keep=True)],
         [[r["id"], f"{r['caller']} → {r['callee']}", r["query"]["status"],
           r["query"]["question"], _answer(r["query"])] for r in rows])


def _answer(q: dict[str, Any]) -> str:
    """``unknown (ccp-1, verified): details`` or ``-``."""
    if not q.get("answer"):
        return "-"
    mark = "verified" if q.get("answer_verified") else "NOT VERIFIED"
    who = f"{q['answered_by']}, " if q.get("answered_by") else ""
    return f"{q['answer']} ({who}{mark})" + (f": {q['details']}" if q.get("details") else "")


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(queries)
