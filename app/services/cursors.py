"""The one keyset-cursor codec: `<microseconds since the epoch>.<id>`, optionally led by one
letter naming the sort order it belongs to. Its shape is exactly the pattern the spec
states for `cursor`, so any schema-valid cursor decodes: a well-formed position is never
refused (only one of another sort order is, a rule across two parameters)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.errors import BadRequest

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 17 digits of microseconds reach the year 5138: every value is a valid datetime.
_CURSOR = re.compile(r"^([A-Za-z]?)([0-9]{1,17})\.([0-9a-f]{32}|[0-9]{1,18})$")


def encode(moment: datetime, key: UUID | int, order: str = "") -> str:
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    return f"{order}{micros}.{key.hex if isinstance(key, UUID) else key}"


def decode(cursor: str, *, order: str = "", uuid_key: bool = True) -> tuple[datetime, UUID | int]:
    match = _CURSOR.match(cursor)
    if match is None or (len(match.group(3)) == 32) != uuid_key:
        raise BadRequest("cursor is not valid; start again without it",
                         errors=[{"pointer": "cursor", "detail": "not a cursor of this list"}])
    if match.group(1) != order:
        raise BadRequest("cursor belongs to another sort order; start again without it",
                         errors=[{"pointer": "cursor", "detail": "another sort order"}])
    moment = EPOCH + timedelta(microseconds=int(match.group(2)))
    raw = match.group(3)
    return moment, UUID(hex=raw) if uuid_key else int(raw)
