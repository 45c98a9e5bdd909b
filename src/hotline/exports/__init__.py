"""Exports of formatted notifications for other systems: OASIS CAP 1.2 XML
(:mod:`hotline.exports.cap`) and JSON Lines (:mod:`hotline.exports.jsonl`). Pure
functions over notices as :func:`hotline.forms.service.read_notice` returns them."""
