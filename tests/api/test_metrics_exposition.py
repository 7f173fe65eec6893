"""/metrics for on-call: build, process and pool metrics from every worker, gauges read from
PostgreSQL at scrape time, refusals by reason word (never for probes or static files), and
OpenMetrics when the scraper asks for it."""

from __future__ import annotations

import re
import time

import psycopg

from tests.factories import headers, report


def samples(text: str, name: str) -> dict[str, float]:
    """`{labels: value}` of one series name (labels as written, "" when none)."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def test_build_process_and_pool_metrics_cover_every_worker(http, worker):
    deadline = time.monotonic() + 20
    while True:  # both workers up (the server is ready when one of them answers)
        text = http.get("/metrics").text
        if len(samples(text, "process_resident_memory_bytes")) >= 2 or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    [build] = samples(text, "qcc_build_info")
    assert re.fullmatch(r'\{git_sha="([0-9a-f]{7,40}|unknown)",version="[^"]+"\}', build), build
    rss = samples(text, "process_resident_memory_bytes")
    assert len(rss) == 2 and all('pid="' in labels for labels in rss)  # WEB_CONCURRENCY=2
    assert all(value > 10_000_000 for value in rss.values())
    assert samples(text, "process_cpu_seconds_total")[""] > 0
    assert samples(text, "python_info")
    pool = samples(text, "qcc_db_pool")
    assert {'{pool="primary",state="in_use"}', '{pool="primary",state="idle"}',
            '{pool="primary",state="waiting"}'} <= set(pool)
    assert pool['{pool="primary",state="in_use"}'] + pool['{pool="primary",state="idle"}'] >= 2


def test_database_gauges_are_read_at_scrape_time(http, worker, database):
    with psycopg.connect(database.owner_url, autocommit=True) as owner:
        max_connections = int(owner.execute("SHOW max_connections").fetchone()[0])
    deadline = time.monotonic() + 15
    while True:  # the worker's first heartbeat, then a fresh snapshot (cached 5 s)
        text = http.get("/metrics").text
        if samples(text, "qcc_workers_alive").get("", 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert samples(text, "qcc_workers_alive")[""] >= 1
    assert samples(text, "qcc_db_max_connections")[""] == max_connections
    assert 1 <= samples(text, "qcc_db_connections")[""] <= max_connections
    depth = samples(text, "qcc_job_queue_depth")
    assert {'{queue="exports"}', '{queue="maintenance"}'} <= set(depth)
    assert set(samples(text, "qcc_job_queue_oldest_age_seconds")) == set(depth)
    for name in ("qcc_notifications_backlog", "qcc_notifications_dead",
                 "qcc_export_rows_total", "qcc_export_bytes_total"):
        assert samples(text, name)[""] >= 0, name
    assert "qcc_replica_lag_seconds" not in text  # no DATABASE_READ_URL here


def test_refusals_are_counted_by_reason_word_and_never_for_probes_or_files(http):
    def rejected() -> dict[str, float]:
        return samples(http.get("/metrics").text, "qcc_requests_rejected_total")

    before = rejected()
    http.get("/reports", headers={"X-Api-Key": "not-a-key-0000"})  # 401
    http.post("/ingest/qc", json=report(), headers=headers(role="viewer"))  # 403
    http.get("/reports/00000000-0000-7000-8000-000000000000", headers=headers())  # 404
    http.post("/ingest/qc", json={"source": "x"}, headers=headers())  # 400/422
    for path in ("/console/no-such-file.js", "/ui/no-such-file", "/openapi.nope"):
        assert http.get(path).status_code == 404
    after = rejected()

    def grew(labels: str) -> float:
        return after.get(labels, 0) - before.get(labels, 0)

    assert grew('{reason="unauthenticated",tenant="unknown"}') == 1
    assert grew('{reason="forbidden",tenant="acme"}') == 1
    assert grew('{reason="not_found",tenant="acme"}') == 1
    assert grew('{reason="invalid",tenant="acme"}') == 1
    assert sum(after.values()) - sum(before.values()) == 4  # the static 404s are not refusals
    assert all(re.search(r'reason="[a-z_]+"', labels) and not re.search(r'reason="\d', labels)
               for labels in after)
    requests = samples(http.get("/metrics").text, "qcc_http_requests_total")
    assert any('kind="static"' in labels and 'status="404"' in labels for labels in requests)
    assert any('kind="probe"' in labels and "system.get_ready" in labels for labels in requests)


def test_openmetrics_is_served_when_asked_for(http):
    plain = http.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    negotiated = http.get("/metrics", headers={
        "Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"})
    assert negotiated.headers["content-type"].startswith("application/openmetrics-text")
    assert negotiated.text.endswith("# EOF\n")
    assert "# TYPE qcc_requests_rejected counter" in negotiated.text
