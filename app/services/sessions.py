"""Console (BFF) sessions: an API key is exchanged once for an httpOnly session cookie.

The cookie holds a random secret; the database keeps only its sha256 with the key's
tenant, role and id, a lifetime (CONSOLE_SESSION_TTL) and an idle timeout
(CONSOLE_SESSION_IDLE). Every cookie request looks the session up, so a logout or a
revoked key ends it on every worker and replica at once. Logins and logouts are audited
by a trigger on console_sessions; failed logins (no tenant to audit them in) are logged
and, like every attempt, rate-limited per client address.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from app.config import Settings
from app.errors import RateLimited, Unauthorized
from app.services import keys as key_service
from app.services.canonical import rfc3339
from app.services.keys import KeyCache
from app.services.principal import Principal
from app.storage import sessions as session_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.sessions")

COOKIE = "qcc_session"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "qc-console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class LoginLimiter:
    """Login attempts per client address per minute (token bucket, per worker process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, address: str) -> None:
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        tokens, at = self._buckets.get(address, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            raise RateLimited(limit=self.per_minute, burst=self.per_minute,
                              retry_after=max(1, math.ceil((1.0 - tokens) / rate)))
        self._buckets[address] = (tokens - 1.0, now)


_limiters: dict[int, LoginLimiter] = {}


def limiter(settings: Settings) -> LoginLimiter:
    return _limiters.setdefault(id(settings), LoginLimiter(settings.console_login_per_minute))


async def login(*, db: Database, cache: KeyCache, settings: Settings, api_key: str,
                address: str) -> tuple[str, Principal, datetime]:
    """Returns the cookie's secret, the principal and when the session expires."""
    limiter(settings).take(address)
    principal = await key_service.authenticate(db=db, cache=cache, secret=api_key)
    if principal is None:
        log.warning("console login refused: unknown or revoked API key")
        raise Unauthorized("unknown or revoked API key")
    secret = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=settings.console_session_ttl)
    async with db.tenant(principal.tenant, actor_key=principal.key_id) as conn:
        expires = await session_store.insert(
            conn, secret_sha256=digest(secret), tenant=principal.tenant,
            key_id=principal.key_id, role=principal.role, expires_at=expires)
    return secret, principal, expires


async def resolve(*, db: Database, settings: Settings,
                  secret: str) -> tuple[Principal, datetime] | None:
    async with db.system() as conn:
        row = await session_store.lookup(conn, secret_sha256=digest(secret),
                                         idle_seconds=settings.console_session_idle)
    if row is None:
        return None
    return Principal(tenant=row[0], key_id=row[1], role=row[2]), row[3]


async def logout(*, db: Database, principal: Principal, secret: str) -> bool:
    async with db.tenant(principal.tenant, actor_key=principal.key_id) as conn:
        return await session_store.end(conn, secret_sha256=digest(secret))


def describe(who: Principal, *, cookie: bool, expires_at: datetime | None) -> dict[str, Any]:
    """GET /bff/session's answer: whom the console acts as (it shows only what the role
    may do; the server's guard still decides)."""
    return {"authenticated": True, "tenant": who.tenant, "role": who.role,
            "key_id": str(who.key_id),
            "auth": "cookie" if cookie else "api_key",
            "expires_at": rfc3339(expires_at) if expires_at else None}


async def current(*, db: Database, cache: KeyCache, settings: Settings, cookie: str | None,
                  api_key: str | None) -> dict[str, Any]:
    """The console's login check: who the cookie (or key) is, or `authenticated: false`
    for none, an ended session or an unknown key. Never a 401: a page load that finds
    no session is not an error (and so logs none in the browser)."""
    if cookie:
        found = await resolve(db=db, settings=settings, secret=cookie)
        if found is not None:
            return describe(found[0], cookie=True, expires_at=found[1])
    if api_key:
        principal = await key_service.authenticate(db=db, cache=cache, secret=api_key)
        if principal is not None:
            return describe(principal, cookie=False, expires_at=None)
    return {"authenticated": False}


def cookie_header(secret: str, settings: Settings, *, max_age: int | None = None) -> str:
    age = settings.console_session_ttl if max_age is None else max_age
    parts = [f"{COOKIE}={secret}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={age}"]
    if not settings.console_insecure_cookies:
        parts.append("Secure")
    return "; ".join(parts)
