"""Fault drills: a real gunicorn server and workers on a real PostgreSQL over loopback,
under load, while a part is killed, stopped or starved. Each drill is bounded in time and
asserts what a client would notice: nothing acknowledged is lost or stored twice, an
outage is a 503 with Retry-After (never a 500, never a hang), and service comes back.
(The job worker killed mid-export: tests/integration/test_worker_crash.py.)"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.factories import alert_rule, headers, report, webhook
from tests.reliability.conftest import Site, record
from tests.waiting import wait_until
from tools.liveserver import free_port

TENANT = "acme"


@dataclass
class Load:
    """Client threads ingesting one report per run_id, each retried with the same
    Idempotency-Key and body (on a broken connection, 409 in flight or 503) until the
    server acknowledges it."""

    url: str
    prefix: str
    threads: int = 6
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: set[str] = field(default_factory=set)
    replayed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    no_retry_after: int = 0
    broken: int = 0
    answers: list[tuple[float, float, int]] = field(default_factory=list)  # sent, got, status
    unexpected: list[str] = field(default_factory=list)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        self._workers = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(self.threads)]
        for thread in self._workers:
            thread.start()
        return self

    def finish(self, timeout: float = 30) -> None:
        self.stop.set()
        for thread in self._workers:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._workers), "a client is still retrying"

    def _run(self, thread: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = 0
            while not self.stop.is_set():
                run_id = f"{self.prefix}-{thread}-{n}"
                n += 1
                self._land(client, run_id)

    def _land(self, client: httpx.Client, run_id: str) -> None:
        body = report(run_id=run_id, source=self.prefix)
        sent_headers = headers(TENANT, "operator", **{"Idempotency-Key": uuid.uuid4().hex})
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                r = client.post("/ingest/qc", json=body, headers=sent_headers)
            except httpx.TransportError:
                with self.lock:
                    self.broken += 1
                time.sleep(0.05)
                continue
            with self.lock:
                self.statuses[r.status_code] += 1
                self.answers.append((sent, time.monotonic(), r.status_code))
                if r.status_code == 503 and not r.headers.get("retry-after"):
                    self.no_retry_after += 1
            if r.status_code in (200, 201):
                with self.lock:
                    self.acknowledged.add(run_id)
                    self.replayed += r.headers.get("idempotent-replayed") == "true"
                return
            if r.status_code in (409, 503):
                time.sleep(0.1)
                continue
            with self.lock:
                self.unexpected.append(f"{r.status_code} {r.text[:200]}")
            return
        with self.lock:
            self.unexpected.append(f"{run_id} not acknowledged within 40 s")

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def stored(site: Site, prefix: str) -> Counter[str]:
    with psycopg.connect(site.database.owner_url) as conn:
        rows = conn.execute("SELECT run_id, count(*) FROM reports WHERE tenant_id = %s"
                            " AND source = %s GROUP BY run_id", (TENANT, prefix)).fetchall()
    return Counter({run_id: n for run_id, n in rows})


def export(site: Site, source: str, timeout: float = 30) -> dict[str, Any]:
    r = site.http.post("/exports", json={"format": "ndjson", "since": "-1h",
                                         "filters": {"source": [source]}},
                       headers=headers(TENANT, "auditor"))
    assert r.status_code == 202, r.text

    def finished() -> dict[str, Any] | None:
        view = site.http.get(f"/exports/{r.json()['id']}", headers=headers(TENANT, "auditor"))
        assert view.status_code == 200, view.text
        return view.json() if view.json()["status"] in ("succeeded", "failed") else None

    result: dict[str, Any] = wait_until(finished, timeout, "the export to finish")
    return result


def test_kill_9_of_an_api_worker_under_ingest_load_loses_and_doubles_nothing(site: Site):
    load = Load(site.server.url, prefix=f"kill-{uuid.uuid4().hex[:6]}").start()
    time.sleep(2.0)
    victim = site.server.worker_pids()[0]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in site.server.worker_pids() and
               len(site.server.worker_pids()) == 2, 20, "gunicorn to replace the worker")
    time.sleep(1.5)
    load.finish()
    kept = stored(site, load.prefix)
    lost = load.acknowledged - set(kept)
    doubled = {run_id for run_id, n in kept.items() if n > 1}
    after = [got for sent, got, status in load.answers if sent >= killed_at and status == 201]
    record("kill -9 API worker", acknowledged=len(load.acknowledged), lost=len(lost),
           duplicated=len(doubled), replayed=load.replayed, broken_connections=load.broken,
           **{"5xx": load.server_errors(),
              "recovery_s": round(min(after) - killed_at, 2) if after else None})
    assert not load.unexpected, load.unexpected[:5]
    assert len(load.acknowledged) > 50
    assert not lost and not doubled
    assert load.server_errors() == 0, load.statuses


def test_postgresql_fast_restart_under_load_is_503_then_back_and_jobs_still_run(site: Site):
    worker = site.worker("restart-worker")
    try:
        wait_until(lambda: "Starting worker" in worker.log(), 20, "the job worker to start")
        load = Load(site.server.url, prefix=f"restart-{uuid.uuid4().hex[:6]}").start()
        time.sleep(1.5)
        down_at = time.monotonic()
        site.database.postgres_stop("fast")
        time.sleep(1.0)
        ready = site.http.get("/ready")
        health = site.http.get("/health")
        # a key no process has cached: authentication itself needs the database
        unauthenticated = site.http.get("/reports", headers=headers("globex", "viewer"))
        time.sleep(2.0)  # about 3 s down under load
        site.database.postgres_start()
        up_at = time.monotonic()
        wait_until(lambda: any(sent >= up_at and status == 201
                               for sent, _, status in list(load.answers)), 15, "ingest back")
        time.sleep(1.0)
        load.finish()
        first_ok = min(got for sent, got, status in load.answers if sent >= up_at and status == 201)
        during = Counter(status for sent, _, status in load.answers if down_at <= sent < up_at)
        done = export(site, load.prefix)  # asked right after the database came back
        kept = stored(site, load.prefix)
        lost = load.acknowledged - set(kept)
        doubled = {run_id for run_id, n in kept.items() if n > 1}
        record("PostgreSQL fast restart", acknowledged=len(load.acknowledged), lost=len(lost),
               duplicated=len(doubled), worker_restarts=worker.log().count("restarting the job worker in"),
               **{"500": load.statuses[500],
                                           "503_while_down": during[503],
                                           "5xx_other_than_503": load.server_errors()
                                           - load.statuses[503],
                                           "recovery_s": round(first_ok - up_at, 2),
                                           "export_after": done["status"]})
        assert ready.status_code == 503 and ready.headers["retry-after"], ready.text
        assert ready.headers["content-type"] == "application/problem+json"
        assert health.status_code == 200
        assert unauthenticated.status_code == 503, unauthenticated.text
        assert unauthenticated.headers["retry-after"]
        assert not load.unexpected, load.unexpected[:5]
        assert load.statuses[500] == 0 and load.server_errors() == load.statuses[503]
        assert during[503] > 0 and load.no_retry_after == 0
        assert first_ok - up_at <= 5.0
        assert not lost and not doubled
        assert done["status"] == "succeeded", done
        assert done["manifest"]["rows"] == len(kept)
        assert worker.process.poll() is None, worker.log()[-3000:]
    finally:
        worker.stop()


def test_unwritable_export_storage_fails_the_export_with_the_reason(site: Site):
    source = f"full-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(site.database.owner_url, autocommit=True) as conn:
        conn.execute(SEED, {"tenant": TENANT, "source": source, "rows": 20_000})
    # a "disk" that takes 64 KiB per file: the export's gzip stream outgrows it mid-write
    worker = site.worker("full-disk-worker", env={"ALERT_DISPATCH": "false"},
                         file_size_limit=64 * 1024)
    try:
        started = time.monotonic()
        done = export(site, source)
        took = time.monotonic() - started
        folder = site.run_dir / "exports" / TENANT
        leftovers = sorted(p.name for p in folder.glob(f"*{done['id']}*")) if folder.exists() else []
        answering = site.http.get("/reports", params={"limit": 1},
                                  headers=headers(TENANT, "auditor")).status_code
        record("export storage full", status=done["status"], error=done["error"],
               files_left=len(leftovers), api_status=answering, seconds=round(took, 2))
        assert done["status"] == "failed", done
        assert "export storage" in done["error"] and "File too large" in done["error"], done
        assert leftovers == []
        assert answering == 200
    finally:
        worker.stop()


SEED = """
INSERT INTO reports (tenant_id, id, received_at, observed_at, observed_at_raw, source, subject,
                     labels, status, severity, count_pass, count_warn, count_fail,
                     content_sha256, canonical)
SELECT %(tenant)s, gen_random_uuid(), now() - (i || ' milliseconds')::interval, now(),
       '2026-11-21T00:00:00Z', %(source)s, 'subject-' || i, '{}', 'pass', 'info', 1, 0, 0,
       md5(i::text) || md5(i::text),
       convert_to('{"report":' || i || ',"padding":"' || md5(random()::text)
                  || md5(random()::text) || '"}', 'UTF8')
  FROM generate_series(1, %(rows)s) AS i
"""


@dataclass
class Hook:
    """A webhook receiver: the first delivery makes the test kill the dispatcher while
    the request is open; every request is recorded with its X-QCC-Delivery id."""

    on_first: Callable[[], None]
    deliveries: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.deliveries.append(request.headers.get("X-QCC-Delivery", ""))
            first = len(self.deliveries) == 1
        if first:
            self.on_first()
            time.sleep(0.3)
        return Response("ok", status=200)


def test_kill_9_of_the_dispatcher_mid_delivery_still_delivers_once_by_id(site: Site):
    source = f"hook-{uuid.uuid4().hex[:6]}"
    dispatcher = site.worker("dispatcher-a")
    receiver = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
    killed = threading.Event()

    def kill() -> None:
        os.kill(dispatcher.process.pid, signal.SIGKILL)
        killed.set()

    hook = Hook(kill)
    receiver.expect_request("/hook", method="POST").respond_with_handler(hook)
    receiver.start()
    replacement = None
    try:
        r = site.http.post("/alert-rules", headers=headers(TENANT, "admin"), json=alert_rule(
            f"rule-{source}", match={"severity": ["block"], "source": [source]},
            channels=[webhook(receiver.url_for("/hook"), f"whsec-{uuid.uuid4().hex}")]))
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        r = site.http.post("/ingest/qc", json=report(source=source),
                           headers=headers(TENANT, "operator"))
        assert r.status_code == 201, r.text
        assert killed.wait(20), "the dispatcher never sent the delivery"
        killed_at = time.monotonic()
        dispatcher.process.wait(10)
        replacement = site.worker("dispatcher-b")  # what the supervisor does

        def delivered() -> bool:
            r = site.http.get("/notifications", params={"rule_id": rule_id},
                              headers=headers(TENANT, "operator"))
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            return bool(items) and all(d["status"] == "delivered"
                                       for n in items for d in n["deliveries"])

        wait_until(delivered, 40, "the delivery to be sent again and recorded")
        record("kill -9 dispatcher", sends=len(hook.deliveries),
               delivery_ids=len(set(hook.deliveries)),
               recovery_s=round(time.monotonic() - killed_at, 2))
        assert len(hook.deliveries) >= 2  # at least once: the cut-off send is sent again
        assert len(set(hook.deliveries)) == 1 and hook.deliveries[0]  # one delivery id
    finally:
        if replacement is not None:
            replacement.stop()
        dispatcher.stop()
        receiver.stop()


def test_exhausted_connection_slots_are_a_503_not_a_hang(site: Site):
    owner = psycopg.connect(site.database.owner_url, autocommit=True)  # a superuser slot
    hogs: list[psycopg.Connection[Any]] = []

    def hog_every_slot() -> None:
        while True:
            try:
                hogs.append(psycopg.connect(site.database.app_url, autocommit=True,
                                            application_name="drill-hog"))
            except psycopg.OperationalError as exc:
                assert "too many" in str(exc) or "reserved" in str(exc), exc
                return

    try:
        hog_every_slot()
        # the server's connections end (as when PostgreSQL restarts); the hog takes the
        # freed slots before the server can reconnect
        for _ in range(10):
            ended = owner.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE application_name = 'qc-collector'").fetchone()
            hog_every_slot()
            if ended == (0,):
                break
        answers = []
        for _ in range(6):
            started = time.monotonic()
            r = site.http.post("/ingest/qc", json=report(), headers=headers(TENANT, "operator"))
            answers.append((r.status_code, r.headers.get("retry-after"),
                            time.monotonic() - started))
        started = time.monotonic()
        ready = site.http.get("/ready")
        ready_took = time.monotonic() - started
        health = site.http.get("/health").status_code
        slowest = max(took for _, _, took in answers)
    finally:
        for conn in hogs:
            conn.close()
        released_at = time.monotonic()
        owner.close()
    wait_until(lambda: site.http.post("/ingest/qc", json=report(),
                                      headers=headers(TENANT, "operator")).status_code == 201,
               10, "ingest back after the slots were freed")
    back = time.monotonic() - released_at
    record("max_connections exhausted", hogged=len(hogs),
           statuses=dict(Counter(s for s, _, _ in answers)),
           slowest_answer_s=round(slowest, 2), ready=ready.status_code,
           ready_s=round(ready_took, 2), health=health, recovery_s=round(back, 2))
    assert all(status == 503 and retry for status, retry, _ in answers), answers
    assert slowest < 2 + 1.5  # DB_POOL_TIMEOUT plus slack: answered, never hung
    assert ready.status_code == 503 and ready_took < 3
    assert health == 200
    assert back <= 5.0


@pytest.fixture(autouse=True)
def _bounded(request: pytest.FixtureRequest) -> Any:
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < 45, f"{request.node.name} took {took:.1f}s"
