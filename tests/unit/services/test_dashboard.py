"""Dashboard periods: whole UTC hours, 24 h by default, at most 92 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.errors import BadRequest
from app.services.dashboard import period


def test_dashboard_periods_are_whole_utc_hours_default_24h_at_most_92_days() -> None:
    now = datetime(2026, 11, 21, 2, 3, 11, tzinfo=UTC)
    assert period(None, None, now) == (datetime(2026, 11, 20, 2, tzinfo=UTC),
                                       datetime(2026, 11, 21, 3, tzinfo=UTC))
    exact = datetime(2026, 11, 21, 2, tzinfo=UTC)
    assert period(exact, exact, now) == (exact, exact + timedelta(hours=1))
    assert period(now - timedelta(days=92), now, now)[0] == datetime(2026, 8, 21, 2, tzinfo=UTC)
    for since, until in ((now - timedelta(days=93), now), (now, now - timedelta(hours=1)),
                         (datetime(1, 1, 1, tzinfo=UTC), None)):
        try:
            period(since, until, now)
        except BadRequest:
            continue
        raise AssertionError((since, until))
