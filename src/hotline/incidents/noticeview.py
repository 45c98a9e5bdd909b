"""A notification as an incident's timeline shows it: its title and key fields in the
reader's language (what happened, when, where, how many, how sure); the full
notification, with its free text and receipts, is one link away."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from hotline.forms import model
from hotline.forms.render import render
from hotline.forms.service import read_notice

#: field types shown on a timeline (free text and references stay in the notification)
KEY_TYPES = frozenset({"enum", "datetime", "place", "count"})
#: CAP's ratings: in the notification and its CAP export, not on the timeline
_RATINGS = frozenset({"urgency", "severity", "certainty"})


def shown(notice: dict[str, Any], lang: str) -> dict[str, Any]:
    """The notification as a timeline shows it in ``lang``: ``{"id", "party",
    "template", "title", "fields": [{"name", "label", "text"}], "sent_at"}`` (its key
    fields only: what happened, when, where, how many, how sure)."""
    template = model.get(notice["template"], notice["version"])
    rendered = render(template, notice["fields"], lang, original=notice["lang"])
    return {"id": notice["id"], "party": notice["party"], "template": notice["template"],
            "title": rendered.title, "sent_at": notice["sent_at"], "lang": rendered.lang,
            "dir": rendered.dir,
            "fields": [{"name": r.name, "label": r.label, "text": r.text}
                       for r in rendered.rows
                       if r.type in KEY_TYPES and r.name not in _RATINGS]}


def summary(notice: dict[str, Any]) -> str:
    """One line in the sender's language: ``Title — Label: value; …`` (the entry's
    signed text)."""
    view = shown(notice, notice["lang"])
    return str(view["title"]) + " — " + "; ".join(f"{f['label']}: {f['text']}"
                                              for f in view["fields"])


def authored_notice(conn: Connection, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The notification a ``notification`` entry (its signed fields) stands for: the
    first its ``refs`` name that this node holds *and that the entry's author sent*, as
    :func:`hotline.forms.service.read_notice` gives it; else None. A member's entry
    cannot make another party's notification (one sent outside the incident, perhaps
    by a party that is not in it) show on the timeline or go into its exports."""
    if entry["type"] != "notification":
        return None
    for ref in entry["refs"]:
        notice = read_notice(conn, ref)
        if notice is not None and notice["party"] == entry["author"]:
            return notice
    return None


def timeline_notices(conn: Connection, entries: list[dict[str, Any]], lang: str
                     ) -> None:
    """Give each entry of ``entries`` (as the incident service lists them) a ``notice``:
    for a ``notification`` entry, the notification :func:`authored_notice` finds, as
    :func:`shown` gives it in ``lang``; otherwise (or if it finds none) None."""
    for entry in entries:
        notice = authored_notice(conn, entry)
        entry["notice"] = None if notice is None else shown(notice, lang)
