"""Console sessions in the database: hashed, idle timeout, revocation, logout, audit."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.storage import sessions as session_store

TENANT = "sess-int"


async def test_a_session_lives_until_idle_logout_or_revoked_key(db: Any, owner: Any) -> None:
    key_id = uuid.uuid4()
    owner.execute("INSERT INTO api_keys (tenant_id, id, name, role, prefix, secret_sha256, origin)"
                  " VALUES (%s, %s, 'sess', 'auditor', 'qcc_x', %s, 'api')",
                  (TENANT, key_id, hashlib.sha256(secrets.token_bytes(16)).digest()))
    secret = secrets.token_urlsafe(32)
    digest = hashlib.sha256(secret.encode()).digest()
    async with db.tenant(TENANT, actor_key=key_id) as conn:
        await session_store.insert(conn, secret_sha256=digest, tenant=TENANT, key_id=key_id,
                                   role="auditor", expires_at=datetime.now(UTC) + timedelta(hours=8))
    stored = owner.execute("SELECT secret_sha256 FROM console_sessions WHERE key_id = %s",
                           (key_id,)).fetchone()
    assert stored == (digest,)  # only the hash is kept
    async with db.system() as conn:
        found = await session_store.lookup(conn, secret_sha256=digest, idle_seconds=1800)
        assert found is not None and found[:3] == (TENANT, key_id, "auditor")
        owner.execute("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes'"
                      " WHERE key_id = %s", (key_id,))
        assert await session_store.lookup(conn, secret_sha256=digest, idle_seconds=1800) is None
        owner.execute("UPDATE console_sessions SET last_seen_at = now() WHERE key_id = %s", (key_id,))
        assert await session_store.lookup(conn, secret_sha256=digest, idle_seconds=1800)
        owner.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (key_id,))
        assert await session_store.lookup(conn, secret_sha256=digest, idle_seconds=1800) is None
        owner.execute("UPDATE api_keys SET revoked_at = NULL WHERE id = %s", (key_id,))
    async with db.tenant(TENANT, actor_key=key_id) as conn:
        assert await session_store.end(conn, secret_sha256=digest)
    async with db.system() as conn:
        assert await session_store.lookup(conn, secret_sha256=digest, idle_seconds=1800) is None
    actions = [r[0] for r in owner.execute(
        "SELECT action FROM audit_log WHERE tenant_id = %s AND action LIKE 'session.%%'"
        " ORDER BY id", (TENANT,)).fetchall()]
    assert actions == ["session.login", "session.logout"]
