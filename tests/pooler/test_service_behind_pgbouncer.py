"""The service and its worker behind a real PgBouncer in transaction mode: ingest, list,
sign, bundle, timeline and an export, with one server connection shared by every client
connection (so any state that outlived a transaction would surface). Settings needed:
DB_PREPARE_THRESHOLD=off (PgBouncer < 1.21), WORKER_DATABASE_URL = a direct connection
for the job queue's LISTEN."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from tests.factories import headers, report
from tools.liveserver import LiveServer, LiveWorker, start_server, start_worker


@pytest.fixture(scope="module")
def pooled(database, bouncer, tmp_path_factory) -> Iterator[tuple[LiveServer, LiveWorker]]:
    env = {"DATABASE_URL": bouncer.url(database.app_url), "DB_PREPARE_THRESHOLD": "off",
           "WORKER_DATABASE_URL": database.app_url, "DB_POOL_MAX": "4",
           "WORKER_HEARTBEAT_SECONDS": "1", "ALERT_DISPATCH": "false"}
    server = start_server(database, run_dir=tmp_path_factory.mktemp("pooled"), env=env)
    worker = start_worker(database, run_dir=server.log_path.parent, env=env)
    yield server, worker
    worker.stop()
    server.stop()


def test_ingest_list_sign_bundle_timeline_and_export_through_pgbouncer(pooled, bouncer):
    server, worker = pooled
    source = f"pooled-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ids = []
        for n in range(8):  # more than psycopg's default prepare threshold (5) per statement
            r = http.post("/ingest/qc", json=report(source=source), headers=headers(
                **({"Idempotency-Key": f"{source}-{n}"} if n % 2 else {})))
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        replay = http.post("/ingest/qc", json=report(source=source), headers=headers(
            **{"Idempotency-Key": f"{source}-1"}))
        assert replay.status_code == 422  # same key, different body (unique subject)
        batch = http.post("/ingest/qc/batch", headers=headers(),
                          json={"reports": [report(source=source) for _ in range(5)]})
        assert batch.status_code == 201, batch.text
        ids += [item["id"] for item in batch.json()["items"]]

        for _ in range(8):
            listed = http.get("/reports", params={"source": source, "limit": 500},
                              headers=headers(role="viewer"))
            assert listed.status_code == 200
            assert {i["id"] for i in listed.json()["items"]} == set(ids)
        again = http.get("/reports", params={"source": source, "limit": 500},
                         headers=headers(role="viewer", **{"If-None-Match": listed.headers["etag"]}))
        assert again.status_code == 304
        # the API's change listener runs on WORKER_DATABASE_URL: a change is never hidden
        # behind a 304 answered from memory
        r = http.post("/ingest/qc", json=report(source=source), headers=headers())
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        changed = http.get("/reports", params={"source": source, "limit": 500},
                           headers=headers(role="viewer", **{"If-None-Match": listed.headers["etag"]}))
        assert changed.status_code == 200 and len(changed.json()["items"]) == len(ids)
        # the other tenant's transactions ran on the same server connection: RLS held
        other = http.get("/reports", params={"source": source}, headers=headers("globex"))
        assert other.status_code == 200 and other.json()["items"] == []
        assert http.get(f"/reports/{ids[0]}", headers=headers("globex")).status_code == 404

        for report_id in ids[:7]:
            signed = http.post(f"/reports/{report_id}/sign", headers=headers(role="auditor"))
            assert signed.status_code == 201, signed.text
        bundle = http.get(f"/reports/{ids[0]}/bundle.zip", headers=headers(role="viewer"))
        assert bundle.status_code == 200
        assert "signature.dsse.json" in zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
        timeline = http.get("/timeline", params={"source": source, "bucket": "hour"},
                            headers=headers(role="viewer"))
        assert timeline.status_code == 200
        assert sum(sum(b["counts"].values()) for b in timeline.json()["buckets"]) == len(ids)

        started = http.post("/exports", headers=headers(role="auditor"), json={
            "format": "ndjson", "since": "-1h", "filters": {"source": [source]}})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        while (status := http.get(started.headers["location"], headers=headers(
                role="auditor")).json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
        assert status["status"] == "succeeded" and status["manifest"]["rows"] == len(ids)
    assert "ERROR" not in server.log() and "Traceback" not in server.log(), server.log()[-3000:]
