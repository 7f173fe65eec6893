"""GET /ops/metrics: tenant-scoped numbers from PostgreSQL, across two workers, no PII."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import headers, report
from tools import liveserver

TENANTS = ("acme", "globex", "opsa", "opsb")  # a superset: other servers' keys stay valid


@pytest.fixture(scope="module")
def ops_client(database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = liveserver.start_server(database, workers=2, run_dir=tmp_path_factory.mktemp("ops"),
                          env={"API_KEYS": liveserver.test_api_keys(TENANTS), "OPS_FLUSH_SECONDS": "0.2",
                               "VALIDATE_RESPONSES": "true"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def metrics(client: httpx.Client, tenant: str, role: str = "operator") -> dict[str, Any]:
    r = client.get("/ops/metrics", headers=headers(tenant, role))
    assert r.status_code == 200, r.text
    return r.json()


def test_ops_metrics_are_the_tenants_own_numbers_without_pii(ops_client: httpx.Client) -> None:
    secret_subject = f"dataset:secret-{uuid.uuid4().hex}"
    for _ in range(3):
        r = ops_client.post("/ingest/qc", json=report(subject=secret_subject),
                            headers=headers("opsa", "operator"))
        assert r.status_code == 201, r.text
    assert ops_client.post("/ingest/qc", json=report(),
                           headers=headers("opsa", "viewer")).status_code == 403
    assert ops_client.get("/ops/metrics", headers=headers("opsa", "viewer")).status_code == 403

    deadline = time.monotonic() + 10
    while True:  # each worker adds its counts within OPS_FLUSH_SECONDS
        doc = metrics(ops_client, "opsa")
        req = doc["requests"]
        if (req["total"] >= 5 and req["rejected"].get("403", 0) >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert doc["reports"]["last_hour"] == {"block": 3}
    assert doc["reports"]["last_24h"] == {"block": 3}
    assert req["total"] == 5 and req["client_errors"] == 2 and req["server_errors"] == 0
    assert req["rejected"] == {"403": 2}
    assert req["server_error_ratio"] == 0.0 and req["errors_per_minute"] > 0
    assert req["ingest_latency_ms"]["count"] == 4  # three stored, one refused
    assert req["ingest_latency_ms"]["p50"] is not None
    assert doc["notifications"] == {"backlog": 0, "dead_letters": 0, "dead_letters_last_24h": 0}
    assert doc["exports"] == {}

    for role in ("auditor", "admin"):
        text = ops_client.get("/ops/metrics", headers=headers("opsa", role)).text
        assert secret_subject not in text and "secret-" not in text

    other = metrics(ops_client, "opsb")  # never another tenant's numbers
    assert other["reports"] == {"last_hour": {}, "last_24h": {}}
    assert other["requests"]["total"] == 0 and other["requests"]["rejected"] == {}
    assert other["requests"]["ingest_latency_ms"] == {"count": 0, "p50": None, "p95": None}


def test_ops_metrics_answers_304_to_its_etag(ops_client: httpx.Client) -> None:
    for _ in range(3):  # a minute boundary between the two reads changes the numbers
        first = ops_client.get("/ops/metrics", headers=headers("opsb", "auditor"))
        assert first.status_code == 200 and first.headers["etag"]
        again = ops_client.get("/ops/metrics", headers=headers(
            "opsb", "auditor", **{"If-None-Match": first.headers["etag"]}))
        if again.status_code == 304:
            assert again.headers["etag"] == first.headers["etag"] and again.content == b""
            return
    pytest.fail("no 304 for an unchanged ETag")
