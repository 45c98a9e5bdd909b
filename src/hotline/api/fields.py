"""The operator API's bounded field types (the bounds are :mod:`hotline.bounds`'):
FastAPI checks a request against them (422 ``invalid-request`` naming the field) and
writes their bounds into the OpenAPI document."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hotline.bounds import INT64_MAX, MAX_TIME_MS, PAGE_MAX

#: a cursor into a node-wide sequence (inbox release number, journal id): a BIGINT
Cursor = Annotated[int, Field(ge=0, le=INT64_MAX,
                              description="a cursor: 0 or a value this node gave out")]
#: how many items one page holds
PageLimit = Annotated[int, Field(ge=1, le=PAGE_MAX)]
#: a wall-clock time in ms since the epoch
EpochMs = Annotated[int, Field(ge=0, le=MAX_TIME_MS,
                               description="ms since 1970-01-01 UTC, up to the year 9999")]
