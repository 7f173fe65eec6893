"""GET /timeline reflects ingests, groups in the database, answers 304 when unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.factories import headers, report


def test_timeline_counts_new_reports_in_the_current_bucket(http):
    source = f"tl-{uuid.uuid4().hex[:8]}"
    params = {"source": source, "group_by": "severity"}
    before = http.get("/timeline", params=params, headers=headers(role="viewer"))
    assert before.status_code == 200
    assert sum(b["total"] for b in before.json()["buckets"]) == 0
    checks = [{"rule": "r", "status": "fail", "severity": "block"}]
    for _ in range(3):
        http.post("/ingest/qc", json=report(source=source, checks=checks), headers=headers())
    http.post("/ingest/qc", json=report(source=source, checks=[
        {"rule": "r", "status": "pass", "severity": "block"}]), headers=headers())
    after = http.get("/timeline", params=params, headers=headers(role="viewer")).json()
    assert after["bucket"] == "hour" and len(after["buckets"]) == 49
    assert after["buckets"][-1]["counts"] == {"block": 3, "info": 1}
    assert after["buckets"][-1]["total"] == 4
    by_status = http.get("/timeline", params={**params, "group_by": "status", "bucket": "day"},
                         headers=headers()).json()
    assert by_status["buckets"][-1]["counts"] == {"fail": 3, "pass": 1}
    assert len(by_status["buckets"]) == 31


def test_timeline_with_label_filter_matches_rollup_path(http):
    marker = uuid.uuid4().hex[:8]
    source = f"tl-{marker}"
    for i in range(4):
        http.post("/ingest/qc", json=report(source=source, labels={"m": marker, "i": str(i % 2)}),
                  headers=headers())
    rollup = http.get("/timeline", params={"source": source}, headers=headers()).json()
    scanned = http.get("/timeline", params={"source": source, "label": f"m:{marker}"},
                       headers=headers()).json()
    assert rollup["buckets"] == scanned["buckets"]
    half = http.get("/timeline", params={"label": [f"m:{marker}", "i:1"]}, headers=headers())
    assert half.json()["buckets"][-1]["total"] == 2


def test_explicit_range_is_whole_utc_buckets_and_etag_304(http):
    until = datetime.now(UTC).replace(microsecond=0)
    since = until - timedelta(hours=5, minutes=30)
    params = {"since": since.isoformat(), "until": until.isoformat()}
    r = http.get("/timeline", params=params, headers=headers())
    body = r.json()
    assert body["since"].endswith(":00:00.000000Z") and len(body["buckets"]) in (6, 7)
    again = http.get("/timeline", params=params,
                     headers=headers(**{"If-None-Match": r.headers["etag"]}))
    assert again.status_code == 304
    assert http.get("/timeline", params={"bucket": "hour", "since": "2020-01-01T00:00:00Z"},
                    headers=headers()).status_code == 400
