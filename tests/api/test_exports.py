"""Exports end to end: a real worker, signed expiring downloads, limits."""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid

import orjson
import psycopg
import pytest

from app.services.exports.signed_urls import url_signature
from tests.factories import headers, report


def wait_done(http, export_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/exports/{export_id}", headers=headers(role="auditor")).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"export {export_id} did not finish: {body}")


@pytest.fixture(scope="module")
def source(http):
    """Five reports from one source, two of them severity block."""
    name = f"exp-{uuid.uuid4().hex[:8]}"
    bodies = [report(source=name, checks=[{"rule": "r", "status": "fail",
                                          "severity": "block" if i < 2 else "warn"}])
              for i in range(5)]
    r = http.post("/ingest/qc/batch", json={"reports": bodies}, headers=headers())
    assert r.status_code == 201
    return name, r.json()["items"]


def test_ndjson_export_downloads_through_a_signed_url(http, worker, source):
    name, items = source
    r = http.post("/exports", json={"format": "ndjson", "since": "-1h",
                                    "filters": {"source": [name], "severity": ["block"]}},
                  headers=headers(role="auditor"))
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/exports/{r.json()['id']}"
    done = wait_done(http, r.json()["id"])
    assert done["status"] == "succeeded", done
    manifest = done["manifest"]
    assert manifest["rows"] == 2 and manifest["filters"]["source"] == [name]
    assert manifest["created_by"]
    file = http.get(done["download_url"])  # no API key: the URL is the credential
    assert file.status_code == 200 and file.headers["content-type"] == "application/gzip"
    assert hashlib.sha256(file.content).hexdigest() == manifest["sha256"]
    assert len(file.content) == manifest["bytes"]
    lines = gzip.decompress(file.content).splitlines()
    exported = [orjson.loads(line) for line in lines]
    block_ids = {i["id"] for i in items if i["severity"] == "block"}
    assert {e["id"] for e in exported} == block_ids
    assert all(hashlib.sha256(line).hexdigest() ==
               next(i["content_sha256"] for i in items if i["id"] == orjson.loads(line)["id"])
               for line in lines)  # each line is the canonical report itself


def test_csv_export_and_a_tampered_or_expired_url(http, worker, server, source):
    name, _ = source
    r = http.post("/exports", json={"format": "csv", "since": "-1h",
                                    "filters": {"source": [name]}}, headers=headers())
    done = wait_done(http, r.json()["id"])
    text = gzip.decompress(http.get(done["download_url"]).content).decode()
    rows = text.splitlines()
    assert rows[0].startswith("id,received_at,observed_at,source") and len(rows) == 6
    url = done["download_url"]
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert http.get(tampered).status_code == 403
    other = url.replace(done["id"], str(uuid.uuid4()))
    assert http.get(other).status_code == 403
    # a correctly signed URL whose time has passed: 410
    secret = (server.log_path.parent / "export-sign-secret").read_bytes()
    expires = int(time.time()) - 5
    sig = url_signature(secret, "acme", uuid.UUID(done["id"]), done["manifest"]["sha256"], expires)
    r = http.get(f"/exports/{done['id']}/download", params={"expires": expires, "sig": sig})
    assert r.status_code == 410 and r.headers["content-type"] == "application/problem+json"


def test_a_period_over_the_limit_is_422(http):
    r = http.post("/exports", json={"format": "ndjson", "since": "-40d"}, headers=headers())
    assert r.status_code == 422 and r.json()["limit"] == 31
    r = http.post("/exports", json={"format": "ndjson", "since": "2026-01-01T00:00:00Z",
                                    "until": "2025-12-01T00:00:00Z"}, headers=headers())
    assert r.status_code == 422


def test_a_third_running_export_is_429(http, database):
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        # two exports of globex waiting in the queue (rows only: no job for a worker to take)
        ids = [uuid.uuid4(), uuid.uuid4()]
        for export_id in ids:
            conn.execute("INSERT INTO exports (tenant_id, id, status, format, since, until,"
                         " filters, request_hash) VALUES ('globex', %s, 'queued', 'csv', now(),"
                         " now(), '{}', %s)", (export_id, uuid.uuid4().hex))
        try:
            r = http.post("/exports", json={"format": "ndjson", "since": "-1d"},
                          headers=headers("globex", "auditor"))
            assert r.status_code == 429 and "retry-after" in r.headers
            assert r.json()["limit"] == 2
        finally:
            conn.execute("UPDATE exports SET status = 'failed' WHERE id = ANY(%s)", (ids,))


def test_other_tenants_cannot_see_an_export(http, worker, source):
    r = http.post("/exports", json={"format": "ndjson", "since": "-1h",
                                    "filters": {"source": [source[0]]}}, headers=headers())
    assert http.get(f"/exports/{r.json()['id']}", headers=headers("globex")).status_code == 404


def test_the_list_pages_by_following_its_link(http, database):
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        ids = [uuid.uuid4() for _ in range(3)]
        for export_id in ids:  # finished exports of globex, rows only
            conn.execute("INSERT INTO exports (tenant_id, id, status, format, since, until,"
                         " filters, request_hash) VALUES ('globex', %s, 'failed', 'csv', now(),"
                         " now(), '{}', %s)", (export_id, uuid.uuid4().hex))
    seen, url = [], "/exports?limit=1"
    while url:
        r = http.get(url, headers=headers("globex", "auditor"))
        assert r.status_code == 200 and len(r.json()["items"]) <= 1
        seen += [item["id"] for item in r.json()["items"]]
        link = r.headers.get("link")
        assert (link is None) == (r.json()["next_cursor"] is None)
        url = link.split(">", 1)[0].lstrip("<") if link else None
        assert url is None or (url.startswith("/exports?") and "limit=1" in url)
    assert {str(i) for i in ids} <= set(seen) and len(seen) == len(set(seen))
