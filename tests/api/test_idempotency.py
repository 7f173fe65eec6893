"""Idempotency-Key: replay, different body -> 422, in flight -> 409, per tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from app.services.ingest import fingerprint
from tests.factories import headers, report


def post(http, body, key, tenant="acme", path="/ingest/qc"):
    return http.post(path, json=body, headers=headers(tenant=tenant, **{"Idempotency-Key": key}))


def test_same_key_same_body_replays_the_first_answer(http):
    key, body = uuid.uuid4().hex, report()
    first = post(http, body, key)
    second = post(http, body, key)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.json() == first.json() and second.headers["location"] == first.headers["location"]
    listed = http.get("/reports", params={"subject": body["subject"]}, headers=headers())
    assert len(listed.json()["items"]) == 1  # stored once


def test_same_key_different_body_is_422_and_stores_nothing(http):
    key = uuid.uuid4().hex
    post(http, report(), key)
    other = report()
    r = post(http, other, key)
    assert r.status_code == 422 and "different request body" in r.json()["detail"]
    assert http.get("/reports", params={"subject": other["subject"]},
                    headers=headers()).json()["items"] == []


def test_keys_are_scoped_per_tenant(http):
    key = uuid.uuid4().hex
    assert post(http, report(), key).status_code == 201
    r = post(http, report(), key, tenant="globex")
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers


def test_key_in_flight_is_409_and_an_abandoned_one_is_taken_over(http, database):
    key, body = uuid.uuid4().hex, report()
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        # a first request with this body is still running (or died) and holds the key
        conn.execute("INSERT INTO idempotency_keys (tenant_id, key, fingerprint, state)"
                     " VALUES ('acme', %s, %s, 'in_flight')",
                     (key, fingerprint("ingest.ingest_report", body)))
        r = post(http, body, key)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
        conn.execute("UPDATE idempotency_keys SET created_at = %s WHERE key = %s",
                     (datetime.now(UTC) - timedelta(minutes=5), key))
    r = post(http, body, key)
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert post(http, body, key).headers["idempotent-replayed"] == "true"


def test_batch_replay(http):
    key = uuid.uuid4().hex
    bodies = {"reports": [report(), report()]}
    first = post(http, bodies, key, path="/ingest/qc/batch")
    second = post(http, bodies, key, path="/ingest/qc/batch")
    assert second.headers["idempotent-replayed"] == "true" and second.json() == first.json()
    # the same key on the other endpoint is a different request
    assert post(http, bodies["reports"][0], key).status_code == 422
