"""Idempotency-Key: replay, different body -> 422, in flight -> 409, per tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psycopg

from app.services.ingest.idempotency import fingerprint
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
    assert second.content == first.content  # the stored bytes, not a re-rendering
    assert second.headers["location"] == first.headers["location"]
    listed = http.get("/reports", params={"subject": body["subject"]}, headers=headers())
    assert len(listed.json()["items"]) == 1  # stored once


def test_an_answer_stored_by_an_earlier_version_replays_byte_for_byte(http, database):
    # the row as every version before the ingest package wrote it: status, Location, body
    # (here the body of a real answer, so that it is a valid summary)
    body = report()
    first = http.post("/ingest/qc", json=body, headers=headers())
    report_id = first.json()["id"]
    stored = orjson.dumps(first.json(), option=orjson.OPT_INDENT_2)  # other bytes, same JSON
    key = uuid.uuid4().hex
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("INSERT INTO idempotency_keys (tenant_id, key, fingerprint, state,"
                     " response_status, response_body, location)"
                     " VALUES ('acme', %s, %s, 'done', 201, %s, %s)",
                     (key, fingerprint("ingest.ingest_report", body), stored,
                      f"/reports/{report_id}"))
    r = post(http, body, key)
    assert r.status_code == 201 and r.content == stored
    assert r.headers["location"] == f"/reports/{report_id}"
    assert r.headers["idempotent-replayed"] == "true"


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
