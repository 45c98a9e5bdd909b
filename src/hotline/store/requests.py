"""Operator requests remembered by idempotency key, so a client that retries after a lost
answer (a crash between commit and reply, a dropped connection) does not send twice."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from hotline.store.schema import operator_requests


@dataclass(frozen=True)
class Remembered:
    fingerprint: str
    response: str


def find(conn: Connection, key: str) -> Remembered | None:
    row = conn.execute(select(operator_requests.c.fingerprint, operator_requests.c.response)
                       .where(operator_requests.c.key == key)).first()
    return None if row is None else Remembered(row.fingerprint, row.response)


def remember(conn: Connection, key: str, fingerprint: str, response: str, now_ms: int) -> None:
    conn.execute(operator_requests.insert().values(key=key, fingerprint=fingerprint,
                                                   response=response, created_at=now_ms))
