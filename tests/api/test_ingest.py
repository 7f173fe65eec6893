"""POST /ingest/qc and /ingest/qc/batch over HTTP against a real server."""

from __future__ import annotations

import concurrent.futures
import hashlib
import uuid

import httpx
import rfc8785

from tests.factories import headers, report
from tools import liveserver


def test_ingest_answers_201_with_summary_and_location(http):
    body = report()
    r = http.post("/ingest/qc", json=body, headers=headers(role="operator"))
    assert r.status_code == 201, r.text
    summary = r.json()
    assert r.headers["location"] == f"/reports/{summary['id']}"
    assert summary["tenant"] == "acme"
    assert summary["status"] == "fail"
    assert summary["severity"] == "block"
    assert summary["counts"] == {"pass": 1, "warn": 0, "fail": 1}
    assert summary["signed"] is False
    assert "checks" not in summary
    assert uuid.UUID(summary["id"]).version == 7


def test_content_sha256_is_the_hash_of_the_canonical_report(http):
    r = http.post("/ingest/qc", json=report(), headers=headers())
    summary = r.json()
    full = http.get(f"/reports/{summary['id']}", headers=headers(role="viewer")).json()
    canonical = {k: v for k, v in full.items() if k not in ("content_sha256", "signed")}
    assert hashlib.sha256(rfc8785.dumps(canonical)).hexdigest() == summary["content_sha256"]


def test_derived_status_and_severity(http):
    cases = [
        ([{"rule": "a", "status": "pass", "severity": "block"}], "pass", "info"),
        ([{"rule": "a", "status": "warn", "severity": "warn"},
          {"rule": "b", "status": "pass", "severity": "block"}], "warn", "warn"),
        ([{"rule": "a", "status": "warn", "severity": "block"},
          {"rule": "b", "status": "fail", "severity": "info"}], "fail", "block"),
    ]
    for checks, status, severity in cases:
        r = http.post("/ingest/qc", json=report(checks=checks), headers=headers())
        assert r.status_code == 201, r.text
        assert (r.json()["status"], r.json()["severity"]) == (status, severity)


def test_batch_is_stored_in_input_order(http):
    bodies = [report(subject=f"batch:{i}:{uuid.uuid4().hex}") for i in range(25)]
    r = http.post("/ingest/qc/batch", json={"reports": bodies}, headers=headers())
    assert r.status_code == 201, r.text
    items = r.json()["items"]
    assert [i["subject"] for i in items] == [b["subject"] for b in bodies]
    for item in items[:3]:
        assert http.get(f"/reports/{item['id']}", headers=headers()).status_code == 200


def test_batch_with_invalid_items_names_each_index_and_stores_nothing(http):
    marker = uuid.uuid4().hex
    bodies = [report(subject=f"{marker}:{i}") for i in range(6)]
    bodies[1]["checks"][0]["status"] = "broken"
    del bodies[4]["source"]
    bodies[5]["observed_at"] = "2026-13-45T99:00:00Z"
    r = http.post("/ingest/qc/batch", json={"reports": bodies}, headers=headers())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["invalid_indexes"] == [1, 4, 5]
    pointers = {e["pointer"] for e in problem["errors"]}
    assert "/reports/1/checks/0/status" in pointers
    listed = http.get("/reports", params={"subject": [f"{marker}:{i}" for i in range(6)]},
                      headers=headers())
    assert listed.json()["items"] == []


def test_concurrent_ingests_are_all_committed(http):
    marker = uuid.uuid4().hex
    def post(i):
        return http.post("/ingest/qc", json=report(subject=f"{marker}", run_id=str(i)),
                         headers=headers())
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = [r.status_code for r in pool.map(post, range(64))]
    assert statuses == [201] * 64
    listed = http.get("/reports", params={"subject": marker, "limit": 500}, headers=headers())
    assert sorted(int(i["run_id"]) for i in listed.json()["items"]) == list(range(64))


def test_batches_beyond_the_workers_batch_concurrency_wait_their_turn_and_all_commit(
        database, tmp_path):
    # One worker that takes one batch at a time (BATCH_CONCURRENCY=1): eight sent at once
    # all succeed, every report stored once.
    live = liveserver.start_server(database, workers=1, run_dir=tmp_path,
                                   env={"BATCH_CONCURRENCY": "1"})
    marker = uuid.uuid4().hex
    try:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            def post(n: int) -> httpx.Response:
                body = {"reports": [report(subject=marker, run_id=f"{n}-{i}") for i in range(50)]}
                return client.post("/ingest/qc/batch", json=body, headers=headers())

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(post, range(8)))
            assert [a.status_code for a in answers] == [201] * 8
            assert [len(a.json()["items"]) for a in answers] == [50] * 8
            listed = client.get("/reports", params={"subject": marker, "limit": 500},
                                headers=headers()).json()["items"]
    finally:
        live.stop()
    assert sorted(item["run_id"] for item in listed) == sorted(
        f"{n}-{i}" for n in range(8) for i in range(50))
