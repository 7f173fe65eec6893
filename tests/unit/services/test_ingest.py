"""Pure domain rules: derived fields, canonical bytes, config parsing, cursors, ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from app.config import ConfigError, parse_api_keys
from app.errors import BadRequest, InvalidBody, RateLimited
from app.services import canonical, ingest, reports, timeline
from app.services.ratelimit import RateLimiter


def test_derive_takes_worst_status_and_highest_non_pass_severity():
    checks = [{"status": "pass", "severity": "block"}, {"status": "warn", "severity": "info"}]
    assert canonical.derive(checks) == ("warn", "info", {"pass": 1, "warn": 1, "fail": 0})
    assert canonical.derive([{"status": "pass", "severity": "block"}])[1] == "info"


def test_canonical_bytes_are_rfc8785():
    # keys sorted by UTF-16 code units, no whitespace, ES6 number form
    assert canonical.canonical_bytes({"b": 1.0, "a": [True, None], "é": "x"}) == \
        b'{"a":[true,null],"b":1,"\xc3\xa9":"x"}'


def test_prepare_builds_summary_row_and_rollup_key_from_one_canonical_document():
    now = datetime(2026, 11, 21, 2, 3, 4, 567000, tzinfo=UTC)
    submission = {"source": "s", "subject": "x", "observed_at": "2026-11-21T04:00:00+02:00",
                  "checks": [{"rule": "r", "status": "fail", "severity": "block"}]}
    prepared = ingest.prepare(submission, tenant="acme", received_at=now)
    assert prepared.summary["received_at"] == "2026-11-21T02:03:04.567000Z"
    assert prepared.summary["observed_at"] == "2026-11-21T04:00:00+02:00"  # as submitted
    assert prepared.summary["labels"] == {}
    assert "run_id" not in prepared.summary
    assert prepared.rollup_key == (now.replace(minute=0, second=0, microsecond=0), "block",
                                   "fail", "s")
    stored_sha = prepared.row[13]
    assert stored_sha == canonical.sha256_hex(prepared.row[14]) == prepared.summary["content_sha256"]


@pytest.mark.parametrize("observed_at", ["2026-11-21T02:00:00", "not a time", "2026-02-30T00:00:00Z",
                                         "0001-01-01T00:00:00+01:00"])
def test_prepare_all_rejects_impossible_instants(observed_at):
    submission = {"source": "s", "subject": "x", "observed_at": observed_at,
                  "checks": [{"rule": "r", "status": "pass", "severity": "info"}]}
    with pytest.raises(InvalidBody) as caught:
        ingest.prepare_all([submission], tenant="t", batch=False)
    assert caught.value.extra["errors"][0]["pointer"] == "/observed_at"


def test_offsets_beyond_postgres_range_are_normalised_to_utc():
    submission = {"source": "s", "subject": "x", "observed_at": "2029-03-24T16:24:26+23:23",
                  "checks": [{"rule": "r", "status": "pass", "severity": "info"}]}
    [prepared] = ingest.prepare_all([submission], tenant="t", batch=False)
    assert prepared.row[2] == datetime(2029, 3, 23, 17, 1, 26, tzinfo=UTC)


def test_api_keys_parsing():
    keys = parse_api_keys("acme:viewer:secret-1234567890, globex:op-secret-1234567")
    assert [(k.tenant, k.role, k.secret) for k in keys] == [
        ("acme", "viewer", "secret-1234567890"), ("globex", "operator", "op-secret-1234567")]
    with pytest.raises(ConfigError, match="entry 1"):
        parse_api_keys("bad tenant!:admin:secret-123456")
    with pytest.raises(ConfigError, match="at least 16"):
        parse_api_keys("acme:admin:only-15-chars-x")


def test_cursor_round_trip_and_rejections():
    moment, report_id = datetime(2026, 1, 1, tzinfo=UTC), uuid4()
    cursor = reports.encode_cursor("-received_at", moment, report_id)
    assert reports.decode_cursor(cursor, "-received_at") == (moment, report_id)
    with pytest.raises(BadRequest, match="another sort"):
        reports.decode_cursor(cursor, "observed_at")
    for junk in ("0", "eyJ4IjoxfQ", "!!!!"):
        with pytest.raises(BadRequest):
            reports.decode_cursor(junk, "-received_at")


def test_etag_matching_is_weak_and_list_aware():
    tag = reports.etag("acme", 3, "reports")
    assert reports.matches(f'"nope", W/{tag}', tag)
    assert not reports.matches('"nope"', tag)
    assert reports.etag("acme", 4, "reports") != tag
    assert reports.etag("globex", 3, "reports") != tag


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


def test_label_filters_with_conflicting_values_match_nothing():
    filters = reports.make_filters(label=["env:prod", "env:dev"])
    assert filters.sql_params()["subject"] == []
    assert reports.make_filters(label=["a:1", "b:"]).sql_params()["labels"] == '{"a":"1","b":""}'


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


def test_env_sample_lists_every_variable_the_settings_read():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    source = (root / "app" / "config.py").read_text()
    read = set(re.findall(r'env(?:\.get\(|, )"([A-Z_]+)"', source))
    sample = (root / "config" / "collector.env.sample").read_text()
    documented = set(re.findall(r"^#?([A-Z_]+)=", sample, re.MULTILINE))
    assert read and read <= documented, f"missing from the sample: {sorted(read - documented)}"


def test_rfc3339_pads_early_years_and_normalises_to_utc():
    from datetime import timezone

    assert canonical.rfc3339(datetime(211, 3, 9, 4, tzinfo=UTC)) == "0211-03-09T04:00:00.000000Z"
    plus_two = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=2)))
    assert canonical.rfc3339(plus_two) == "2026-01-01T03:00:00.000000Z"


def test_dashboard_periods_are_whole_utc_hours_default_24h_at_most_92_days() -> None:
    from datetime import UTC, datetime, timedelta

    from app.errors import BadRequest
    from app.services.dashboard import period

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
