"""Per-tenant token buckets. Per process: with N workers a tenant may reach N x the rate."""

from __future__ import annotations

import math
import time

from app.errors import RateLimited


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
