"""Formatted notifications on an incident's timeline (docs/incidents.md, "Notifications").

``hotline notify … --incident ID`` sends a notification to the incident's members (those
this party has a link with, besides any ``--to``) and adds a ``notification`` entry to
the timeline: its ``refs`` name the notification's id, its ``text`` is the notification
in the sender's language (title and key fields, one line), so a member that does not
hold the notification itself (no link with the sender) still reads what it said. A
reader that holds it sees it rendered in its own language
(:func:`hotline.incidents.noticeview.shown`).

The notification is sent first, then the entry is added: the membership is checked
before either, so the one way the two part is a failure between the two writes (the
notification then stands alone, and can be added again with ``incident add``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.forms import model
from hotline.forms.service import NoticeService
from hotline.incidents.noticeview import authored_notice
from hotline.incidents.service import IncidentService, no_incident
from hotline.store import incidents as store


def incident_notices(conn: Connection, incident_id: str) -> list[dict[str, Any]]:
    """The notifications this node holds that the incident's timeline names (each by
    the entry its sender signed: :func:`authored_notice`), in timeline
    order (for the CAP export). Raises ``no-incident`` (not held, or not a member yet)
    and ``no-incident-notification`` (none on the timeline)."""
    inc = store.get(conn, incident_id)
    if inc is None or inc.state != "member":
        raise no_incident(incident_id)
    found: dict[str, dict[str, Any]] = {}
    for row in store.entries(conn, incident_id):
        notice = authored_notice(conn, row.fields)
        if notice is not None:
            found.setdefault(notice["id"], notice)
    if not found:
        raise HotlineError("no-incident-notification",
                           f"incident {incident_id} has no notification on its timeline "
                           "(send one with `hotline notify … --incident`)", status=404)
    return list(found.values())


async def notify_incident(notices: NoticeService, incidents: IncidentService,
                          incident_id: str, template_id: str, fields: Any, to: list[str],
                          *, lang: str = "en", as_role: str | None = None,
                          operator: str | None = None
                          ) -> tuple[dict[str, Any], Effects]:
    """Send a notification to the incident's linked members and ``to``, and add its
    ``notification`` entry. Returns the notice (as :meth:`NoticeService.send`) with
    ``entry``: the entry added. A template with an ``incident`` reference field that was
    left empty gets the incident's id. Errors: those of sending (nothing is sent), and
    ``no-incident`` / ``not-member`` before anything is sent."""
    members = await incidents.linked_members(incident_id)
    template = model.latest(template_id)
    if (isinstance(fields, dict) and template.field("incident") is not None
            and "incident" not in fields):
        fields = {**fields, "incident": incident_id}
    notice, effects = await notices.send(template_id, fields, [*members, *to], lang=lang,
                                         as_role=as_role, operator=operator)
    entry, more = await incidents.add_notice(incident_id, notice)
    return {**notice, "entry": entry}, effects.merge(more)
