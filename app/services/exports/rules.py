"""Export request rules: the period (pinned at request time), its length, label keys,
the cap on active exports, and one export per identical active request. The export row
and its job are created in one transaction."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from app.config import Settings
from app.errors import TooManyExports, Unprocessable
from app.services.access.principal import Principal
from app.services.canonical import canonical_bytes
from app.services.reports import Filters
from app.storage import exports as export_store
from app.storage.db import Database
from generated.types import ExportRequest

MAX_ACTIVE = 2
RETRY_AFTER = 5  # seconds: about what a small export takes
_RELATIVE = re.compile(r"^-(\d{1,6})([mhd])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def pin(raw: str | None, now: datetime, name: str) -> datetime:
    """An absolute instant for `-7d`-style or RFC 3339 input, fixed at request time."""
    if raw is None:
        return now
    relative = _RELATIVE.match(raw)
    try:
        if relative:
            return now - int(relative.group(1)) * _UNITS[relative.group(2)]
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise Unprocessable(f"{name} is neither RFC 3339 with an offset nor -N[mhd] within range",
                        errors=[{"pointer": f"/{name}", "detail": "bad time"}])


def filters_from(request_filters: dict[str, Any]) -> Filters:
    return Filters(severity=tuple(request_filters.get("severity", ())),
                   status=tuple(request_filters.get("status", ())),
                   source=tuple(request_filters.get("source", ())),
                   subject=tuple(request_filters.get("subject", ())),
                   labels=tuple(sorted(request_filters.get("labels", {}).items())))


@dataclass(frozen=True, slots=True)
class Accepted:
    export_id: UUID
    status: str


async def create(*, db: Database, settings: Settings, principal: Principal,
                 request: ExportRequest, now: datetime | None = None) -> Accepted:
    now = now or datetime.now(UTC)
    since = pin(request["since"], now, "since")
    until = pin(request.get("until"), now, "until")
    if since >= until:
        raise Unprocessable("since must be before until",
                            errors=[{"pointer": "/since", "detail": "after until"}])
    if until - since > timedelta(days=settings.export_max_days):
        raise Unprocessable(f"the period is longer than {settings.export_max_days} days "
                            "(EXPORT_MAX_DAYS)", limit=settings.export_max_days,
                            errors=[{"pointer": "/since", "detail": "period too long"}])
    for key in request.get("filters", {}).get("labels", {}):
        # (a NUL cannot be stored in jsonb: refused here, not a 500 from the database)
        if not 1 <= len(key) <= 64 or "\x00" in key:
            raise Unprocessable("label keys must be 1-64 characters without NUL",
                                errors=[{"pointer": "/filters/labels", "detail": key[:80]}])
    request_hash = hashlib.sha256(canonical_bytes(request)).hexdigest()
    tenant = principal.tenant
    async with db.tenant(tenant, actor_key=principal.key_id) as conn:
        await export_store.lock_tenant(conn, tenant=tenant)
        running = await export_store.find_active(conn, tenant=tenant, request_hash=request_hash)
        if running is not None:
            return Accepted(running["id"], running["status"])
        if await export_store.count_active(conn, tenant=tenant) >= MAX_ACTIVE:
            raise TooManyExports(limit=MAX_ACTIVE, retry_after=RETRY_AFTER)
        export_id = uuid.uuid4()
        await export_store.create(conn, tenant=tenant, export_id=export_id,
                                  format=request["format"], since=since, until=until,
                                  filters=dict(request.get("filters", {})), request_hash=request_hash,
                                  created_by=principal.key_id)
    return Accepted(export_id, "queued")
