"""Health, readiness, request ids and safe logs (the published contract: tests/contract)."""

from __future__ import annotations

from tests.factories import headers, report
from tools.liveserver import key_for


def test_health_and_ready(http):
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/ready").json() == {"status": "ready", "checks": {"database": "ok"}}


def test_request_id_is_echoed_or_made(http):
    assert http.get("/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert len(http.get("/health").headers["x-request-id"]) == 32


def test_unknown_path_and_method_are_problems(http):
    r = http.get("/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = http.delete("/reports", headers=headers())
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["allow"] == "GET"
    assert http.put("/admin/keys", headers=headers()).headers["allow"] == "GET, POST"


def test_logs_are_json_with_request_ids_and_never_secrets(http, server):
    http.post("/ingest/qc", json=report(), headers={"X-Api-Key": "not-a-real-key-42"})
    http.get("/reports", headers=headers())
    log = server.log()
    assert '"request_id"' in log and '"status":401' in log
    assert "not-a-real-key-42" not in log
    assert key_for("acme", "admin") not in log
