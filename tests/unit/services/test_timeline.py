"""Timeline ranges: whole buckets and the bucket limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import BadRequest
from app.services import timeline


def test_bucket_range_whole_buckets_and_limit():
    now = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
    first, last = timeline.bucket_range("hour", None, None, now)
    assert first == datetime(2026, 11, 19, 10, tzinfo=UTC)
    assert last == datetime(2026, 11, 21, 11, tzinfo=UTC)
    first, last = timeline.bucket_range("day", None, None, now)
    assert last - first == timedelta(days=31)
    with pytest.raises(BadRequest, match="at most 1000"):
        timeline.bucket_range("hour", now - timedelta(days=60), now, now)
    with pytest.raises(BadRequest, match="after"):
        timeline.bucket_range("hour", now, now - timedelta(hours=1), now)
