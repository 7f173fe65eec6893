"""Per-tenant token buckets (per process: with N workers a tenant may reach N x the rate),
and per-address attempt limits shared through PostgreSQL."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from app.errors import RateLimited, TooManyAttempts
from app.storage import keys as key_store
from app.storage.db import Database


class RateLimiter:
    def __init__(self, rate: int, burst: int) -> None:
        self.rate = rate
        self.burst = max(burst, rate, 1)
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, tenant: str) -> None:
        """Spend one token or raise RateLimited with the seconds until one is back."""
        if not self.enabled:
            return
        now = time.monotonic()
        tokens, at = self._buckets.get(tenant, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            retry_after = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(limit=self.rate, burst=self.burst, retry_after=retry_after)
        self._buckets[tenant] = (tokens - 1.0, now)


class AddressThrottle:
    """Attempts per client address per fixed window (failed API keys, console logins),
    counted in PostgreSQL so every worker and replica shares one count. The process
    remembers which addresses it saw over the limit, so a refused address costs no query
    until its window ends. The address is the peer's, or a trusted proxy's X-Forwarded-For
    (gunicorn's forwarded_allow_ips = FORWARDED_ALLOW_IPS)."""

    MAX_REMEMBERED = 10_000

    def __init__(self, scope: str, limit: int, window: int = 60) -> None:
        self.scope = scope
        self.limit = limit
        self.window = window
        self._blocked: dict[str, float] = {}  # address -> monotonic time it is free again

    def check(self, address: str) -> None:
        """Raise TooManyAttempts while the address is known to be over the limit."""
        until = self._blocked.get(address)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return
        raise TooManyAttempts(limit=self.limit, window=self.window,
                              retry_after=max(1, math.ceil(left)))

    async def count(self, *, db: Database, address: str) -> None:
        """Count one attempt; raise TooManyAttempts once the window's count passes the limit."""
        if self.limit <= 0:
            return
        async with db.system() as conn:
            attempts, window_end = await key_store.count_attempt(
                conn, scope=self.scope, address=address, window=self.window)
        if attempts <= self.limit:
            return
        left = max(1.0, (window_end - datetime.now(UTC)).total_seconds())
        if len(self._blocked) >= self.MAX_REMEMBERED:  # forget the soonest-free ones first
            for stale in sorted(self._blocked, key=self._blocked.__getitem__)[:1000]:
                del self._blocked[stale]
        self._blocked[address] = time.monotonic() + left
        raise TooManyAttempts(limit=self.limit, window=self.window,
                              retry_after=math.ceil(left))
