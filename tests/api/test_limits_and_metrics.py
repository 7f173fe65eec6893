"""Rate limit (429 + Retry-After), rejection counts and /metrics across workers."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.factories import headers, report
from tools.liveserver import start_server


@pytest.fixture(scope="module")
def limited(database, tmp_path_factory):
    server = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("limited"),
                          env={"RATE_LIMIT_PER_TENANT": "2", "RATE_LIMIT_BURST": "3",
                               "METRICS_TOKEN": "scrape-token-123"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_rate_limit_answers_429_with_retry_after_and_counts_it(limited):
    statuses = [limited.get("/reports", headers=headers()).status_code for _ in range(8)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    r = limited.get("/reports", headers=headers())
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    problem = r.json()
    assert problem["limit"] == 2 and "rate limit" in problem["detail"]
    assert limited.get("/reports", headers=headers(tenant="globex")).status_code == 200
    scraped = limited.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).text
    assert metric(scraped, "qcc_requests_rejected_total", tenant="acme", reason="rate_limited") >= 1


def test_metrics_need_the_token_when_set(limited):
    r = limited.get("/metrics")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_metrics_add_up_across_workers(http):
    before = http.get("/metrics").text
    for _ in range(20):  # two workers: requests spread over both
        assert http.get("/health").status_code == 200
    http.post("/ingest/qc", json=report(), headers=headers())
    http.get("/reports", headers={"X-Api-Key": "wrong-key-000"})
    after = http.get("/metrics").text
    health = "system.get_health"
    assert metric(after, "qcc_http_requests_total", operation=health, status="200") - \
        metric(before, "qcc_http_requests_total", operation=health, status="200") == 20
    assert metric(after, "qcc_reports_ingested_total", severity="block") >= 1
    assert metric(after, "qcc_requests_rejected_total", tenant="unknown", reason="unauthenticated") > \
        metric(before, "qcc_requests_rejected_total", tenant="unknown", reason="unauthenticated")
    assert re.search(r'qcc_http_request_duration_seconds_bucket\{.*operation="system.get_health"',
                     after)
    assert "wrong-key-000" not in after
