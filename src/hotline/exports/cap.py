"""Notices as one OASIS CAP 1.2 ``<alert>`` (validated by the tests against the XSD).

One ``<info>`` block per (notice, language of :data:`~hotline.forms.model.LANGUAGES`),
with the notice rendered in that language as ``<headline>`` and ``<description>``.
Times are ``YYYY-MM-DDThh:mm:ss±hh:mm`` (never ``Z``, as CAP requires); counts and the
confidence are ``<parameter>``s; a place is an ``<area>`` with a ``<circle>``
(``"lat,lon radius_km"``, radius 0 when none was given: a point). CAP's
urgency/severity/certainty are the notice's own when its template has them, else
``Unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from hotline.forms import model
from hotline.forms.render import render

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_RATINGS = ("urgency", "severity", "certainty")


def cap_time(ms: int) -> str:
    """Wall-clock ms as CAP's ``2022-11-15T14:40:00+00:00``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _event_time(value: dict[str, str]) -> str:
    return datetime.fromisoformat(value["at"]).isoformat(timespec="seconds")


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _info(alert: etree._Element, notice: dict[str, Any], template: model.Template,
          lang: str) -> None:
    fields = notice["fields"]
    shown = render(template, fields, lang, original=notice["lang"])
    info = _sub(alert, "info")
    _sub(info, "language", lang)
    _sub(info, "category", "Security")
    _sub(info, "event", template.title[lang])
    for rating in _RATINGS:
        f = template.field(rating)
        _sub(info, rating, fields.get(rating, "Unknown") if f is not None else "Unknown")
    onset = next((fields[f.name] for f in template.fields
                  if f.type == "datetime" and f.name in fields), None)
    if onset is not None:
        _sub(info, "onset", _event_time(onset))
    _sub(info, "senderName", notice["party"])
    _sub(info, "headline", shown.title)
    _sub(info, "description", shown.as_text())
    params = [("template", f"{template.id}/{template.version}"),
              ("original-language", notice["lang"])]
    for f in template.fields:
        if (f.name in fields and f.type in ("count", "ref")) or (
                f.type == "enum" and f.name in fields and f.name not in _RATINGS):
            params.append((f.name, str(fields[f.name])))
    for name, value in params:
        p = _sub(info, "parameter")
        _sub(p, "valueName", name)
        _sub(p, "value", value)
    for f in template.fields:
        if f.type == "place" and f.name in fields:
            where = fields[f.name]
            area = _sub(info, "area")
            _sub(area, "areaDesc", where["name"])
            _sub(area, "circle", f"{where['lat']},{where['lon']} {where.get('radius_km', '0')}")


def cap_alert(notices: Sequence[dict[str, Any]], *, identifier: str, sender: str,
              sent_ms: int, note: str | None = None) -> bytes:
    """One CAP 1.2 alert (UTF-8 XML bytes) holding ``notices``: ``identifier`` (a notice
    id, an incident id), ``sender`` (the exporting party), ``sent_ms`` (wall-clock ms).
    Its ``<addresses>`` are every recipient party, its scope ``Private``.
    :class:`~hotline.forms.model.TemplateError` if a notice's template is unknown here."""
    alert = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(alert, "identifier", identifier)
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(sent_ms))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", "Alert")
    _sub(alert, "scope", "Private")
    parties = sorted({p for n in notices for p in [n["party"], *n["recipients"]]})
    _sub(alert, "addresses", " ".join(parties))
    if note:
        _sub(alert, "note", note)
    for notice in notices:
        template = model.get(notice["template"], notice["version"])
        for lang in model.LANGUAGES:
            _info(alert, notice, template, lang)
    return bytes(etree.tostring(alert, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def notice_alert(notice: dict[str, Any]) -> bytes:
    """One notice as its own CAP alert (identifier: the notice's id; sender and sent:
    its author and signed time)."""
    return cap_alert([notice], identifier=notice["id"], sender=notice["party"],
                     sent_ms=notice["sent_at"])
