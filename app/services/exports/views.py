"""What GET /exports and GET /exports/{id} show: the export, its manifest once written,
and a fresh signed link while the file is there; each with its validator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from app.config import Settings
from app.errors import NotFound
from app.services.canonical import rfc3339
from app.services.exports.signed_urls import download_url, sign_secret
from app.services.reports import decode_cursor, encode_cursor
from app.services.versions import etag, matches
from app.storage import exports as export_store
from app.storage.db import Database

LIST_ORDER = "-created_at"  # the cursor's order tag


@dataclass(frozen=True, slots=True)
class ExportView:
    """One export's or one page's body, with its ETag."""

    etag: str
    body: dict[str, Any] | None  # None: not modified


def _view(row: dict[str, Any], tenant: str, secret: bytes, ttl: int,
          file_ttl: int) -> dict[str, Any]:
    stamp = lambda value: rfc3339(value) if value else None  # noqa: E731
    body: dict[str, Any] = {
        "id": str(row["id"]), "status": row["status"], "format": row["format"],
        "since": rfc3339(row["since"]), "until": rfc3339(row["until"]),
        "filters": row["filters"],
        "created_by": str(row["created_by"]) if row["created_by"] else None,
        "created_at": stamp(row["created_at"]), "started_at": stamp(row["started_at"]),
        "finished_at": stamp(row["finished_at"]), "error": row["error"],
        "file_expires_at": None, "download_url": None, "download_expires_at": None,
    }
    if row["status"] in ("succeeded", "expired") and row["finished_at"]:
        body["file_expires_at"] = rfc3339(row["finished_at"] + timedelta(seconds=file_ttl))
    if row["status"] in ("succeeded", "expired") and row["sha256"]:
        body["manifest"] = {"sha256": row["sha256"], "rows": row["rows"], "bytes": row["bytes"],
                            "filters": row["filters"], "created_by": body["created_by"],
                            "created_at": body["created_at"]}
    if row["status"] == "succeeded":
        url, expires = download_url(secret, tenant, row["id"], row["sha256"], ttl)
        body["download_url"] = url
        body["download_expires_at"] = rfc3339(datetime.fromtimestamp(expires, UTC))
    return body


async def get(*, db: Database, settings: Settings, tenant: str, export_id: UUID,
              if_none_match: str | None) -> ExportView:
    async with db.tenant(tenant) as conn:
        row = await export_store.get(conn, tenant=tenant, export_id=export_id)
    if row is None:
        raise NotFound("export not found")
    body = _view(row, tenant, sign_secret(settings), settings.export_url_ttl,
                 settings.export_ttl)
    # the worker changes status outside the tenant's version: the tag is the body's own
    tag = etag(tenant, 0, "export", orjson.dumps(body).decode())
    return ExportView(tag, None if matches(if_none_match, tag) else body)


async def list_exports(*, db: Database, settings: Settings, tenant: str, limit: int,
                       cursor: str | None, if_none_match: str | None) -> ExportView:
    """Newest first, keyset paged. The worker changes statuses outside the tenant's
    version, so the validator is the page's own content (as for one export)."""
    after = decode_cursor(cursor, LIST_ORDER) if cursor else None
    async with db.tenant(tenant) as conn:
        rows = await export_store.list_page(conn, tenant=tenant, limit=limit + 1, after=after)
    secret = sign_secret(settings)
    items = [_view(r, tenant, secret, settings.export_url_ttl, settings.export_ttl)
             for r in rows[:limit]]
    next_cursor = (encode_cursor(LIST_ORDER, rows[limit - 1]["created_at"], rows[limit - 1]["id"])
                   if len(rows) > limit else None)
    body = {"items": items, "next_cursor": next_cursor}
    tag = etag(tenant, 0, "exports", orjson.dumps(body).decode())
    return ExportView(tag, None if matches(if_none_match, tag) else body)
