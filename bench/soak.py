"""`make soak`: mixed load for SOAK_SECONDS (default 600) against a real server, then a
table of every operation's answers (5xx counted), latency, and the API workers' memory
growth after the first minute.

Everything runs on this machine: a fresh embedded PostgreSQL under a temporary dir, the
real gunicorn server (2 uvicorn workers) and the job worker; all stopped at the end. The
load: single ingests (half with an Idempotency-Key, some replayed), batches of 50, report
lists with filters, conditional GETs answered 304, single reports, the timeline, an export
every 20 s, and one retention commit (dry run + commit over 20,000 backdated reports)
half-way through. Exit status 0 when no answer was a 5xx and no API worker's RSS grew
more than 10 % after the first minute (or the first sixth of a shorter run).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.seed import seed_old
from bench.workload import report_body
from tools.liveserver import ROOT, key_for, start_database, start_server, start_worker

TENANTS = ("acme", "globex")
CLIENTS = 4
RSS_EVERY_SECONDS = 5.0
GROWTH_LIMIT = 0.10
RESULTS = ROOT / "var" / "soak-latest.md"


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)

    def add(self, op: str, status: int, seconds: float, text: str = "") -> None:
        with self.lock:
            self.statuses[op][status] += 1
            self.latency[op].append(seconds)
            if status >= 500 and len(self.failures) < 20:
                self.failures.append(f"{op} {status} {text[:200]}")


def hdr(tenant: str, role: str, **extra: str) -> dict[str, str]:
    return {"X-Api-Key": key_for(tenant, role), **extra}


class Client:
    def __init__(self, url: str, tally: Tally, seed: int) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.tally = tally
        self.random = random.Random(seed)
        self.etags: dict[str, str] = {}
        self.ids: list[tuple[str, str]] = []
        self.n = seed * 1_000_000

    def call(self, op: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.tally.add(op, 599, time.perf_counter() - started, exc.__class__.__name__)
            return None
        self.tally.add(op, r.status_code, time.perf_counter() - started, r.text)
        return r

    def ingest(self) -> None:
        tenant = self.random.choice(TENANTS)
        self.n += 1
        body = report_body(self.n)
        extra = {"Idempotency-Key": uuid.uuid4().hex} if self.random.random() < 0.5 else {}
        r = self.call("ingest", "POST", "/ingest/qc", json=body, headers=hdr(tenant, "operator", **extra))
        if r is not None and r.status_code == 201:
            self.ids.append((tenant, r.json()["id"]))
            del self.ids[:-200]
            if extra and self.random.random() < 0.2:  # a client retry: replayed
                self.call("ingest (replay)", "POST", "/ingest/qc", json=body,
                          headers=hdr(tenant, "operator", **extra))

    def batch(self) -> None:
        tenant = self.random.choice(TENANTS)
        reports = []
        for _ in range(50):
            self.n += 1
            reports.append(report_body(self.n))
        self.call("ingest batch (50)", "POST", "/ingest/qc/batch", json={"reports": reports},
                  headers=hdr(tenant, "operator"))

    def list(self) -> None:
        params = self.random.choice([{"limit": "50"}, {"limit": "50", "severity": "block"},
                                     {"limit": "20", "source": "etl-nightly", "label": "env:prod"},
                                     {"limit": "100", "sort": "-received_at"}])
        self.call("list reports", "GET", "/reports", params=params,
                      headers=hdr(self.random.choice(TENANTS), "viewer"))

    def conditional(self) -> None:
        tenant = "globex"  # fewer writes there: its list stays unchanged for a while
        key = f"{tenant}/timeline"
        extra = {"If-None-Match": self.etags[key]} if key in self.etags else {}
        r = self.call("timeline (conditional)", "GET", "/timeline", params={"group_by": "severity"},
                      headers=hdr(tenant, "viewer", **extra))
        if r is not None and r.headers.get("etag"):
            self.etags[key] = r.headers["etag"]

    def one(self) -> None:
        if self.ids:
            tenant, report_id = self.random.choice(self.ids)
            self.call("get report", "GET", f"/reports/{report_id}", headers=hdr(tenant, "viewer"))

    def export(self) -> None:
        self.call("export request", "POST", "/exports",
                  json={"format": self.random.choice(["ndjson", "csv"]), "since": "-10m"},
                  headers=hdr("acme", "auditor"))


def rss(master: int) -> dict[int, int]:
    try:
        return {c.pid: c.memory_info().rss for c in psutil.Process(master).children()}
    except psutil.Error:
        return {}


def run(seconds: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="qcc-soak-"))
    print(f"soak: {seconds:.0f} s of mixed load; data under {tmp}", flush=True)
    database = start_database(tmp / "pg")
    server = worker = None
    tally = Tally()
    samples: list[tuple[float, dict[int, int]]] = []
    try:
        seed_old(database.owner_url, tenant="acme", count=20_000, canonical_size=600,
                 after_days=40, span_days=20, offset=0)
        env = {"RATE_LIMIT_PER_TENANT": "0", "LOG_LEVEL": "WARNING"}
        server = start_server(database, workers=2, env=env, run_dir=tmp / "srv")
        worker = start_worker(database, run_dir=tmp / "srv", env={**env, "ALERT_DISPATCH": "false"})
        stop = threading.Event()
        started = time.monotonic()
        retention: dict[str, Any] = {}

        def client_loop(n: int) -> None:
            client = Client(server.url, tally, n + 1)
            mix: list[tuple[float, Callable[[], None]]] = [
                (0.40, client.ingest), (0.05, client.batch), (0.20, client.list),
                (0.20, client.conditional), (0.15, client.one)]
            next_export = started + 5 + n * 5
            while not stop.is_set():
                if n == 0 and not retention and time.monotonic() - started > seconds / 2:
                    retention.update(retain(client))
                if time.monotonic() >= next_export:
                    client.export()
                    next_export += 20 * CLIENTS
                pick = client.random.random()
                for weight, action in mix:
                    if pick < weight:
                        action()
                        break
                    pick -= weight
            client.http.close()

        threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while time.monotonic() - started < seconds:
            samples.append((time.monotonic() - started, rss(server.process.pid)))
            time.sleep(min(RSS_EVERY_SECONDS, max(0.0, seconds - (time.monotonic() - started))))
        samples.append((time.monotonic() - started, rss(server.process.pid)))
        stop.set()
        for thread in threads:
            thread.join(60)
        return report(tally, samples, seconds, retention)
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
        database.stop()


def retain(client: Client) -> dict[str, Any]:
    body = {"older_than_days": 30}
    planned = client.call("retention dry run", "POST", "/admin/retention/run", json=body,
                          headers=hdr("acme", "admin"))
    if planned is None or planned.status_code != 200:
        return {"error": "dry run failed"}
    done = client.call("retention commit", "POST", "/admin/retention/run",
                       json={**body, "dry_run": False, "plan_hash": planned.json()["plan_hash"]},
                       headers=hdr("acme", "admin"))
    if done is None or done.status_code != 200:
        return {"error": "commit failed"}
    return {"deleted": done.json()["deleted"]}


def report(tally: Tally, samples: list[tuple[float, dict[int, int]]], seconds: float,
           retention: dict[str, Any]) -> int:
    lines = [f"Soak: {seconds:.0f} s, {CLIENTS} clients, 2 API workers, "
             f"{os.cpu_count()} CPUs (shared)", "",
             "| operation | requests | 2xx | 304 | 4xx | 5xx | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    total_5xx = 0
    for op in sorted(tally.statuses):
        counts = tally.statuses[op]
        times = sorted(tally.latency[op])
        fives = sum(n for s, n in counts.items() if s >= 500)
        total_5xx += fives
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else 0
        lines.append(f"| {op} | {sum(counts.values())} | "
                     f"{sum(n for s, n in counts.items() if 200 <= s < 300)} | {counts.get(304, 0)} | "
                     f"{sum(n for s, n in counts.items() if 400 <= s < 500)} | {fives} | "
                     f"{statistics.median(times) * 1000:.1f} | {p99 * 1000:.1f} |")
    baseline_at = min(60.0, seconds / 6)
    base = next((s for at, s in samples if at >= baseline_at and s), samples[0][1])
    final = samples[-1][1]
    lines += ["", "| API worker | RSS after the first minute (MiB) | RSS at the end (MiB) | growth |",
              "|---|---:|---:|---:|"]
    worst = 0.0
    for pid in sorted(final):
        if pid not in base:
            lines.append(f"| {pid} | (restarted) | {final[pid] / 2**20:.1f} | — |")
            worst = max(worst, 1.0)
            continue
        growth = (final[pid] - base[pid]) / base[pid]
        worst = max(worst, growth)
        lines.append(f"| {pid} | {base[pid] / 2**20:.1f} | {final[pid] / 2**20:.1f} | "
                     f"{growth * 100:+.1f} % |")
    ok = total_5xx == 0 and worst <= GROWTH_LIMIT
    lines += ["", f"retention commit: {retention or 'not reached'}",
              f"5xx: {total_5xx} (target 0); worst RSS growth {worst * 100:+.1f} % "
              f"(target ≤ {GROWTH_LIMIT * 100:.0f} %): {'PASS' if ok else 'FAIL'}"]
    if tally.failures:
        lines += ["", "first 5xx answers:", *tally.failures]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    return 0 if ok else 1


def main() -> int:
    return run(float(os.environ.get("SOAK_SECONDS", "600")))


if __name__ == "__main__":
    sys.exit(main())
