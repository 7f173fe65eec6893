"""Reads on a real streaming replica (DATABASE_READ_URL): they really run there, no read is
older than a write committed before it (read-your-writes), a 304 is never answered from
data older than its validator, and a stopped or promoted replica sends reads back to the
primary while /ready and /metrics say so.

The drills run last, in file order, on this module's own standby and server."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from app.observability import SAMPLE_SECONDS
from tests.factories import headers, report
from tests.replication.standby import Standby
from tools.liveserver import LiveServer, start_server

PAIRS_PER_CLIENT = 250
CLIENTS = 4  # 1,000 write-then-read pairs in all


@pytest.fixture(scope="module")
def deployment(database, standby: Standby, tmp_path_factory) -> Iterator[LiveServer]:
    server = start_server(database, run_dir=tmp_path_factory.mktemp("replica"), env={
        "DATABASE_READ_URL": standby.url(database.app_url), "READ_MAX_LAG_SECONDS": "2"})
    try:
        wait_for(server, lambda ready, _: ready.get("replica") == "ok")
        yield server
    finally:
        server.stop()


def status(server: LiveServer) -> tuple[dict[str, Any], str]:
    ready = httpx.get(f"{server.url}/ready", timeout=10).json()["checks"]
    return ready, httpx.get(f"{server.url}/metrics", timeout=10).text


def gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def wait_for(server: LiveServer, condition: Any, timeout: float = 20) -> tuple[dict, str]:
    """Until every worker's view satisfies `condition` (several answers in a row: the
    requests spread over both gunicorn workers)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        ready, text = status(server)
        streak = streak + 1 if condition(ready, text) else 0
        if streak >= 6:
            return ready, text
        time.sleep(0.1)
    raise AssertionError(f"condition not reached: {status(server)[0]}")


def served(server: LiveServer) -> dict[str, float]:
    """qcc_replica_reads_total by served_by, once every worker has sampled its tallies
    (each does every 5 s)."""
    time.sleep(SAMPLE_SECONDS + 0.5)
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {who: float(n) for who, n in re.findall(
        r'^qcc_replica_reads_total\{served_by="(\w+)"\} (\S+)$', text, re.MULTILINE)}


def test_reads_run_on_the_replica_and_metrics_show_it(deployment):
    before = served(deployment)
    with httpx.Client(base_url=deployment.url, timeout=10) as http:
        for _ in range(20):
            # no-cache: a repeated read would be answered from the worker's memory
            fresh = {**headers(role="viewer"), "Cache-Control": "no-cache"}
            assert http.get("/reports", headers=fresh).status_code == 200
    after = served(deployment)
    assert after.get("replica", 0) - before.get("replica", 0) >= 20
    ready, text = status(deployment)
    assert ready == {"database": "ok", "replica": "ok"}
    assert gauge(text, "qcc_replica_reads_enabled") == 1
    assert 0 <= gauge(text, "qcc_replica_lag_seconds") < 2
    assert re.search(r'qcc_db_pool\{pool="replica",state="idle"\}', text)


def test_read_your_writes_holds_over_1000_write_then_read_pairs(deployment, standby):
    """Each client writes a report and at once reads it back (alternately the report and
    a list filtered to its source). A raw look at the replica right after each write
    shows how often the replica alone would have answered stale."""
    stale: list[str] = []
    raw_behind = [0]
    failures: list[str] = []
    before = served(deployment)

    def client(n: int) -> None:
        source = f"ryw-{n}-{uuid.uuid4().hex[:6]}"
        with httpx.Client(base_url=deployment.url, timeout=30) as http, \
                psycopg.connect(standby.owner_url, autocommit=True) as raw:
            for i in range(PAIRS_PER_CLIENT):
                written = http.post("/ingest/qc", json=report(source=source), headers=headers())
                if written.status_code != 201:
                    failures.append(f"ingest {written.status_code}")
                    continue
                report_id = written.json()["id"]
                if raw.execute("SELECT count(*) FROM reports WHERE id = %s",
                               (report_id,)).fetchone() == (0,):
                    raw_behind[0] += 1
                if i % 2:
                    read = http.get(f"/reports/{report_id}", headers=headers(role="viewer"))
                    if read.status_code != 200:
                        stale.append(f"GET /reports/{report_id}: {read.status_code}")
                else:
                    read = http.get("/reports", params={"source": source, "limit": 1},
                                    headers=headers(role="viewer"))
                    items = read.json().get("items", []) if read.status_code == 200 else []
                    if not items or items[0]["id"] != report_id:
                        stale.append(f"list after {report_id}: {read.status_code}")

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    after = served(deployment)
    on_replica = after.get("replica", 0) - before.get("replica", 0)
    on_primary = after.get("primary", 0) - before.get("primary", 0)
    pairs = CLIENTS * PAIRS_PER_CLIENT
    print(f"\n{pairs} write-then-read pairs in {elapsed:.1f} s: {len(stale)} stale;"
          f" the replica alone was behind right after the write {raw_behind[0]} times;"
          f" reads served by the replica {on_replica:.0f}, by the primary (replica behind"
          f" past READ_WAIT_SECONDS) {on_primary:.0f}")
    assert failures == []
    assert stale == []
    assert on_replica >= pairs // 2  # most reads did run on the replica


def test_a_304_is_never_answered_from_data_older_than_the_validator(deployment):
    source = f"etag-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=deployment.url, timeout=10) as http:
        first = http.get("/reports", params={"source": source}, headers=headers(role="viewer"))
        tag, seen = first.headers["etag"], 0
        for _ in range(100):
            written = http.post("/ingest/qc", json=report(source=source), headers=headers())
            assert written.status_code == 201
            seen += 1
            again = http.get("/reports", params={"source": source, "limit": 500},
                             headers=headers(role="viewer", **{"If-None-Match": tag}))
            assert again.status_code == 200, "304 for a page that changed"
            assert len(again.json()["items"]) == seen
            tag = again.headers["etag"]
            same = http.get("/reports", params={"source": source, "limit": 500},
                            headers=headers(role="viewer", **{"If-None-Match": tag}))
            assert same.status_code == 304


def test_a_stopped_replica_sends_reads_to_the_primary_and_ready_says_so(deployment, standby):
    source = f"down-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=deployment.url, timeout=10) as http:
        standby.stop()
        try:
            for _ in range(30):  # at once: reads keep working on the primary
                assert http.post("/ingest/qc", json=report(source=source),
                                 headers=headers()).status_code == 201
                listed = http.get("/reports", params={"source": source, "limit": 500},
                                  headers=headers(role="viewer"))
                assert listed.status_code == 200
            assert len(listed.json()["items"]) == 30
            ready, text = wait_for(deployment, lambda r, t: r.get("replica", "ok") != "ok")
            assert ready["database"] == "ok" and "replica unreachable" in ready["replica"]
            assert gauge(text, "qcc_replica_reads_enabled") == 0
            assert http.get("/ready").status_code == 200  # the service still serves
        finally:
            standby.start()
        wait_for(deployment, lambda r, t: r.get("replica") == "ok")
        listed = http.get("/reports", params={"source": source, "limit": 500},
                          headers=headers(role="viewer"))
        assert len(listed.json()["items"]) == 30


def test_a_promoted_replica_is_no_longer_read(deployment, standby):
    """The promote drill: the standby becomes a primary of its own (a failover elsewhere);
    it no longer follows our primary, so reads go back to the primary at once."""
    source = f"promoted-{uuid.uuid4().hex[:8]}"
    standby.promote()
    ready, text = wait_for(deployment, lambda r, t: r.get("replica", "ok") != "ok")
    assert "not a standby" in ready["replica"]
    assert gauge(text, "qcc_replica_reads_enabled") == 0
    with httpx.Client(base_url=deployment.url, timeout=10) as http:
        for _ in range(10):
            assert http.post("/ingest/qc", json=report(source=source),
                             headers=headers()).status_code == 201
        listed = http.get("/reports", params={"source": source, "limit": 500},
                          headers=headers(role="viewer"))
    assert len(listed.json()["items"]) == 10
