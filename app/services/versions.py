"""The tenant's change version as the ETag validator: the one tag rule, the one weak
comparison, and the one way a versioned read runs (every read with an ETag goes through
here; a repeated If-None-Match may be answered before it, from memory, by app/conditional.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from app.storage import reports as report_store
from app.storage.db import Connection, Database

T = TypeVar("T")


def etag(tenant: str, version: int, *parts: Any) -> str:
    digest = hashlib.blake2b(orjson.dumps([tenant, version, *parts], default=str),
                             digest_size=12).hexdigest()
    return f'"{digest}"'


def matches(if_none_match: str | None, current: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2) against a list of entity tags."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        if tag.strip().removeprefix("W/") == current:
            return True
    return False


async def versioned_read(*, db: Database, tenant: str, if_none_match: str | None,
                         tag_of: Callable[[int], str],
                         read: Callable[[Connection], Awaitable[T]]) -> tuple[str, T | None]:
    """The one way a read with an ETag runs: the tenant's version makes the tag (`tag_of`);
    a matching If-None-Match skips `read` (None). On the primary, the version rides with
    the transaction's scope statement and the read follows in the same transaction (not
    pipelined: psycopg's pipeline machinery cost more CPU per request than the round trips
    it saved, measured with process_time); with replica reads, the version comes from the
    primary first, so a replica's answer is never older than the tag it is sent with."""
    if db.reads_on_replica:
        async with db.system() as conn:
            tag = tag_of(await report_store.tenant_version(conn, tenant=tenant))
        if matches(if_none_match, tag):
            return tag, None
        async with db.tenant(tenant, read=True) as conn:
            return tag, await read(conn)
    async with db.tenant_versioned(tenant) as (conn, version):
        tag = tag_of(version)
        if matches(if_none_match, tag):
            return tag, None
        return tag, await read(conn)
