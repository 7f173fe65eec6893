"""The per-tenant token bucket."""

from __future__ import annotations

import pytest

from app.errors import RateLimited
from app.services.access.ratelimit import RateLimiter


def test_rate_limiter_refills_and_names_the_limit():
    limiter = RateLimiter(rate=2, burst=2)
    limiter.take("t")
    limiter.take("t")
    with pytest.raises(RateLimited) as caught:
        limiter.take("t")
    assert caught.value.headers["Retry-After"] == "1"
    assert caught.value.extra["limit"] == 2
    limiter.take("other")  # per tenant
    assert not RateLimiter(0, 0).enabled
