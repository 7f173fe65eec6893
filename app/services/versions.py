"""The tenant's change version as the ETag validator: the one tag rule, the one weak
comparison, and the one way a versioned read runs (every read with an ETag goes through
here; a repeated If-None-Match may be answered before it, from memory, by app/conditional.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from app.errors import NotFound
from app.storage import reports as report_store
from app.storage.db import Database, Read

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
                         tag_of: Callable[[int], str], read: Read[T | None],
                         missing: str | None = None) -> tuple[str, T | None]:
    """The one way a read with an ETag runs: the tenant's version makes the tag (`tag_of`);
    a matching If-None-Match answers None. `missing`: the read may find nothing (None),
    which is then a 404 with this detail — unless the tag matched (a 304 says nothing of
    existence, as before the read). On the primary the version, the scope and the read
    travel in one round trip (`Database.read_versioned`; the read runs even when the tag
    then matches — a repeated If-None-Match is answered before this, from memory, by
    app/conditional.py). With replica reads the version comes from the primary first, so a
    replica's answer is never older than the tag it is sent with."""
    if db.reads_on_replica:
        async with db.system() as conn:
            tag = tag_of(await report_store.tenant_version(conn, tenant=tenant))
        if matches(if_none_match, tag):
            return tag, None
        async with db.tenant(tenant, read=True) as conn:
            value = await read.run(conn)
    else:
        version, value = await db.read_versioned(tenant, read)
        tag = tag_of(version)
        if matches(if_none_match, tag):
            return tag, None
    if value is None and missing is not None:
        raise NotFound(missing)
    return tag, value
