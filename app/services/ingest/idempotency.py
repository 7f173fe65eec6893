"""The Idempotency-Key protocol of the ingest.

A request with a key first claims it (in flight); its answer is stored with its reports,
in the same transaction (`Pending` rides on the group commit's work), so a retry replays
exactly what the first request was answered. A key used with another body is refused; a
first request that died in flight, or an answer older than the TTL, gives the key up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import IdempotencyInFlight, IdempotencyKeyReused, ServiceUnavailable
from app.services.canonical import canonical_bytes, sha256_hex
from app.storage import idempotency as idem_store
from app.storage.db import Database

# A first request that has not finished after this long is presumed dead; its key may
# be taken over by a retry.
IN_FLIGHT_TIMEOUT = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What a key's first request was answered: the stored body, byte for byte, and the
    report it created (one report; None for a batch)."""

    body: bytes
    report_id: str | None


@dataclass(frozen=True, slots=True)
class Pending:
    """An answer to store under `key` when the reports commit."""

    key: str
    answer: StoredAnswer


def fingerprint(operation: str, body: Any) -> str:
    return sha256_hex(operation.encode() + b"\n" + canonical_bytes(body))


async def claim(db: Database, *, tenant: str, key: str, fingerprint: str,
                ttl: timedelta, in_flight_timeout: timedelta) -> StoredAnswer | None:
    """None when this request now owns the key; else the stored answer (or an error)."""
    async with db.tenant(tenant) as conn:
        if await idem_store.claim(conn, tenant=tenant, key=key, fingerprint=fingerprint):
            return None
        record = await idem_store.get(conn, tenant=tenant, key=key)
        if record is None:  # released between our insert and read: try once more
            if await idem_store.claim(conn, tenant=tenant, key=key, fingerprint=fingerprint):
                return None
            raise IdempotencyInFlight()
        age = datetime.now(UTC) - record["created_at"]
        expired = age > ttl
        abandoned = record["state"] == "in_flight" and age > in_flight_timeout
        if expired or abandoned:
            if await idem_store.reclaim(conn, tenant=tenant, key=key, fingerprint=fingerprint,
                                        seen_created_at=record["created_at"]):
                return None
            raise IdempotencyInFlight()
        if record["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused()
        if record["state"] == "in_flight":
            raise IdempotencyInFlight()
        return StoredAnswer(bytes(record["response_body"]), record["report_id"])


def completion(pending: Pending) -> idem_store.Completion:
    """The key's answer as the ingest write stores it, with the reports it describes."""
    return idem_store.Completion(pending.key, pending.answer.body, pending.answer.report_id)


_releasing: set[asyncio.Task[None]] = set()


async def release(db: Database, *, tenant: str, key: str, within: timedelta) -> None:
    """Free the key for the client's retry; while the database is down, keep trying in
    the background so the retry is not refused as in flight until the timeout."""
    if await _release_once(db, tenant=tenant, key=key):
        return

    async def later() -> None:
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1.0)
            if await _release_once(db, tenant=tenant, key=key):
                return

    task = asyncio.get_running_loop().create_task(later())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


async def _release_once(db: Database, *, tenant: str, key: str) -> bool:
    try:
        async with db.tenant(tenant) as conn:
            await idem_store.release(conn, tenant=tenant, key=key)
    except ServiceUnavailable:
        return False
    return True


async def prune(*, db: Database, older_than: datetime) -> int:
    async with db.system() as conn:
        return await idem_store.prune(conn, older_than=older_than)
