"""Reading the audit log: filters, keyset cursor, ETag (entries come from DB triggers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from app.services import cursors
from app.services.canonical import rfc3339
from app.services.reports import parse_time
from app.services.versions import etag, versioned_read
from app.storage import audit as audit_store
from app.storage.db import Database


@dataclass(frozen=True, slots=True)
class AuditPage:
    etag: str
    items: list[dict[str, Any]] | None  # None: not modified
    next_cursor: str | None



def encode_cursor(at: datetime, event_id: int) -> str:
    return cursors.encode(at, event_id)


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    at, event_id = cursors.decode(cursor, uuid_key=False)
    assert isinstance(event_id, int)
    return at, event_id


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": rfc3339(row["at"]),
        "action": row["action"],
        "actor": {"key_id": str(row["actor_key_id"]) if row["actor_key_id"] else None,
                  "label": row["actor"]},
        "target": {"type": row["target_type"], "id": row["target_id"]},
        "details": row["details"],
    }


async def list_events(*, db: Database, tenant: str, actions: list[str] | None,
                      actor: UUID | None, since: str | None, until: str | None, limit: int,
                      cursor: str | None, if_none_match: str | None) -> AuditPage:
    after = decode_cursor(cursor) if cursor else None
    params = {"actions": actions or None, "actor": actor, "since": parse_time(since, "since"),
              "until": parse_time(until, "until"), "limit": limit + 1,
              "after_at": after[0] if after else None, "after_id": after[1] if after else None}
    tag, rows = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda version: etag(tenant, version, "audit", sorted(actions or []),
                                    str(actor), since, until, limit, cursor),
        read=audit_store.list_page(tenant=tenant, params=params))
    if rows is None:
        return AuditPage(tag, None, None)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["at"], rows[-1]["id"]) if more else None
    return AuditPage(tag, [_event(r) for r in rows], next_cursor)
