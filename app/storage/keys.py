"""API key rows. Secrets never reach this layer, only their sha256."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.storage.db import Connection
from app.storage.queries import q


async def lookup(conn: Connection, *, secret_sha256: bytes) -> tuple[str, UUID, str] | None:
    cur = await conn.execute(q("lookup_api_key"), {"secret_sha256": secret_sha256})
    row = await cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


async def sync_env_keys(conn: Connection, *, keys: list[dict[str, str]]) -> None:
    """Inside the caller's transaction; audited with actor 'env'."""
    await conn.execute(q("set_actor"), {"actor": "env"})
    await conn.execute(q("sync_env_keys"), {"keys": Jsonb(keys)})


async def create(conn: Connection, *, tenant: str, key_id: UUID, name: str, role: str,
                 prefix: str, secret_sha256: bytes, origin: str) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("insert_api_key"), {
            "tenant": tenant, "id": key_id, "name": name, "role": role, "prefix": prefix,
            "secret_sha256": secret_sha256, "origin": origin,
        })
        row = await cur.fetchone()
        assert row is not None
        return row


async def list_(conn: Connection, *, tenant: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("list_api_keys"), {"tenant": tenant})
        return await cur.fetchall()


async def revoke(conn: Connection, *, tenant: str, key_id: UUID) -> bool:
    cur = await conn.execute(q("revoke_api_key"), {"tenant": tenant, "id": key_id})
    return await cur.fetchone() is not None


async def touch(conn: Connection, *, tenant: str, key_id: UUID) -> None:
    await conn.execute(q("touch_api_key"), {"tenant": tenant, "id": key_id})


async def rotate(conn: Connection, *, tenant: str, key_id: UUID, secret_sha256: bytes,
                 prefix: str, grace_seconds: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("rotate_api_key"), {
            "tenant": tenant, "id": key_id, "secret_sha256": secret_sha256, "prefix": prefix,
            "grace_seconds": grace_seconds})
        return await cur.fetchone()


async def count_attempt(conn: Connection, *, scope: str, address: str,
                        window: int) -> tuple[int, Any]:
    cur = await conn.execute(q("count_auth_attempt"), {
        "scope": scope, "address": address, "window": window})
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), row[1]
