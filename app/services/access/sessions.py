"""Console (BFF) sessions: an API key is exchanged once for an httpOnly session cookie.

The cookie holds a random secret; the database keeps only its sha256 with the key's
tenant, role and id, a lifetime (CONSOLE_SESSION_TTL) and an idle timeout
(CONSOLE_SESSION_IDLE). Every cookie request looks the session up, so a logout or a
revoked key ends it on every worker and replica at once. Logins and logouts are audited
by a trigger on console_sessions; failed logins (no tenant to audit them in) are logged
and, like every attempt, rate-limited per client address (shared by every worker).
The session's role is its key's role at each request (a changed role applies at once).
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import Unauthorized
from app.services.access import keys as key_service
from app.services.access.keys import KeyCache, hash_secret
from app.services.access.principal import Principal
from app.services.access.ratelimit import AddressThrottle
from app.services.canonical import rfc3339
from app.storage import sessions as session_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.sessions")

async def login(*, db: Database, cache: KeyCache, throttle: AddressThrottle, ttl_seconds: int,
                api_key: str, address: str) -> tuple[str, Principal, datetime]:
    """Returns the cookie's secret, the principal and when the session expires. Attempts
    count against `throttle` (CONSOLE_LOGIN_PER_MINUTE per client address)."""
    throttle.check(address)
    await throttle.count(db=db, address=address)
    principal = await key_service.authenticate(db=db, cache=cache, secret=api_key)
    if principal is None:
        log.warning("console login refused: unknown or revoked API key")
        raise Unauthorized("unknown or revoked API key")
    secret = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    async with db.tenant(principal.tenant, actor_key=principal.key_id) as conn:
        expires = await session_store.insert(
            conn, secret_sha256=hash_secret(secret), tenant=principal.tenant,
            key_id=principal.key_id, role=principal.role, expires_at=expires)
    return secret, principal, expires


async def resolve(*, db: Database, idle_seconds: int,
                  secret: str) -> tuple[Principal, datetime] | None:
    async with db.system() as conn:
        row = await session_store.lookup(conn, secret_sha256=hash_secret(secret),
                                         idle_seconds=idle_seconds)
    if row is None:
        return None
    return Principal(tenant=row[0], key_id=row[1], role=row[2]), row[3]


async def logout(*, db: Database, principal: Principal, secret: str) -> bool:
    async with db.tenant(principal.tenant, actor_key=principal.key_id) as conn:
        return await session_store.end(conn, secret_sha256=hash_secret(secret))


def describe(who: Principal, *, cookie: bool, expires_at: datetime | None) -> dict[str, Any]:
    """GET /bff/session's answer: whom the console acts as (it shows only what the role
    may do; the server's guard still decides)."""
    return {"authenticated": True, "tenant": who.tenant, "role": who.role,
            "key_id": str(who.key_id),
            "auth": "cookie" if cookie else "api_key",
            "expires_at": rfc3339(expires_at) if expires_at else None}


async def current(*, db: Database, cache: KeyCache, idle_seconds: int, cookie: str | None,
                  api_key: str | None) -> dict[str, Any]:
    """The console's login check: who the cookie (or key) is, or `authenticated: false`
    for none, an ended session or an unknown key. Never a 401: a page load that finds
    no session is not an error (and so logs none in the browser)."""
    if cookie:
        found = await resolve(db=db, idle_seconds=idle_seconds, secret=cookie)
        if found is not None:
            return describe(found[0], cookie=True, expires_at=found[1])
    if api_key:
        principal = await key_service.authenticate(db=db, cache=cache, secret=api_key)
        if principal is not None:
            return describe(principal, cookie=False, expires_at=None)
    return {"authenticated": False}

