"""`make bench`: seed 1 M reports, measure the service against same-run baselines, and
print one markdown table (also written to bench/results/latest.md).

Everything runs on this machine: a fresh embedded PostgreSQL under a temporary dir,
the real gunicorn server (2 uvicorn workers), the bare peer for ingest (bench/peer.py)
and wrk as the load generator. All of it is stopped at the end, even on error.
Exit status: 0 when every row passes, 1 when any row fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import psycopg

from bench import wrk
from bench.measure import (
    RssSampler,
    copy_seconds,
    http_p50_ms,
    sql_median_ms,
    wait_until_idle,
)
from bench.seed import seed
from bench.table import Row, num, ratio, render
from bench.workload import BATCH_SIZE, batch_body, canonical_size, copy_rows, report_body
from tools.liveserver import (
    ROOT,
    LiveDatabase,
    LiveServer,
    free_port,
    key_for,
    start_database,
    start_server,
)

REPORTS = {"acme": 700_000, "globex": 300_000}
TIMELINE_TENANT = "globex"
WORKERS = 2
WARMUP_SECONDS = 2
TIMELINE_RUNS = 50
SQL_RUNS = 10
RESULTS = ROOT / "bench" / "results" / "latest.md"
GROUP_BY_HOUR = """
SELECT date_trunc('hour', received_at), severity, count(*)
  FROM reports
 WHERE tenant_id = %(tenant)s AND received_at >= %(since)s AND received_at < %(until)s
 GROUP BY 1, 2
"""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def phase(sampler: RssSampler, name: str, detail: str) -> None:
    sampler.phase = name
    log(f"{name}: {detail}")


def api_headers(tenant: str, role: str) -> dict[str, str]:
    return {"X-Api-Key": key_for(tenant, role)}


def load(server: LiveServer, db: LiveDatabase, path: str, seconds: float, *,
         headers: dict[str, str] | None = None, script: str | None = None) -> wrk.WrkResult:
    """A discarded warm-up (pools, caches), then the measured wrk run. wrk leaves requests
    in flight when it stops (seconds' worth of batches); each run waits for the server to
    finish them so that they do not weigh on the next one."""
    url = f"{server.url}{path}"
    wrk.run(url, seconds=WARMUP_SECONDS, headers=headers, script=script)
    wait_until_idle(server.process.pid, db.owner_url)
    result = wrk.run(url, seconds=seconds, headers=headers, script=script)
    log(f"  {path}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, {result.errors} errors")
    wait_until_idle(server.process.pid, db.owner_url)
    return result


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """A pre-flight check that the load run will measure the answer we mean to measure."""
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url} answered "
                           f"{response.status_code}, expected {status}: {response.text[:500]}")
    return response


def latency(result: wrk.WrkResult) -> str:
    if not result.requests:  # wrk then prints zero latencies
        return "**no request completed**"
    text = f"{num(result.rps)} req/s, p50 {num(result.p50_ms)} ms, p99 {num(result.p99_ms)} ms"
    return text + (f", **{result.errors} errors**" if result.errors else "")


# -- the figures ----------------------------------------------------------------------


def reads(server: LiveServer, db: LiveDatabase, client: httpx.Client, seconds: float,
          seeded: int) -> list[Row]:
    headers = api_headers("acme", "viewer")
    path = "/reports?severity=block&limit=50"
    page = expect(client.get(path, headers=headers), 200)
    if len(page.json()["items"]) != 50:
        raise RuntimeError(f"{path} did not return a full page of 50")
    etag = page.headers["ETag"]
    cached = {**headers, "If-None-Match": etag}
    expect(client.get(path, headers=cached), 304)

    health = load(server, db, "/health", seconds)
    listed = load(server, db, path, seconds, headers=headers)
    unchanged = load(server, db, path, seconds, headers=cached)
    baseline = f"`GET /health`: {num(health.rps)} req/s"
    return [
        Row(f"`GET /reports?severity=block` page of 50, over {seeded:,} rows", latency(listed),
            baseline, ratio(listed.rps / health.rps), "≥ 0.5x health; p99 ≤ 15 ms",
            listed.rps >= 0.5 * health.rps and listed.p99_ms <= 15 and not listed.errors),
        Row("the same with `If-None-Match` (304)", latency(unchanged), baseline,
            ratio(unchanged.rps / health.rps), "≥ 0.8x health",
            unchanged.rps >= 0.8 * health.rps and not unchanged.errors),
    ]


def timeline(client: httpx.Client, owner_url: str, tenant: str, seeded: int) -> Row:
    def last_30_days() -> dict[str, str]:
        until = datetime.now(UTC)
        return {"bucket": "hour", "group_by": "severity",
                "since": (until - timedelta(days=30)).isoformat(), "until": until.isoformat()}

    headers = api_headers(tenant, "viewer")
    document = expect(client.get("/timeline", params=last_30_days(), headers=headers), 200).json()
    log(f"  /timeline: {len(document['buckets'])} buckets, "
        f"{sum(b['total'] for b in document['buckets']):,} reports")
    p50 = http_p50_ms(client, "/timeline", last_30_days, headers=headers, runs=TIMELINE_RUNS)
    until = datetime.now(UTC)
    plain = sql_median_ms(owner_url, GROUP_BY_HOUR, {
        "tenant": tenant, "since": until - timedelta(days=30), "until": until}, runs=SQL_RUNS)
    log(f"  /timeline p50 {p50:.2f} ms; plain GROUP BY median {plain:.2f} ms")
    return Row(f"`/timeline` 30 days x hour, {seeded:,} reports ({tenant})",
               f"p50 {num(p50)} ms ({TIMELINE_RUNS} sequential requests)",
               f"plain `GROUP BY` over reports: {num(plain)} ms (median of {SQL_RUNS})",
               f"{plain / p50:.1f}x faster", "p50 ≤ 10 ms and ≥ 10x faster",
               p50 <= 10 and plain / p50 >= 10)


def ingest_script(headers: dict[str, str]) -> str:
    """One report per request; its run_id counts up so no two bodies are the same."""
    marker = "@N@"
    body = {**report_body(), "run_id": f"bench#{marker}"}
    return wrk.lua_post({**headers, "Content-Type": "application/json"},
                        orjson.dumps(body).decode(), counter_marker=marker)


def single_ingest(server: LiveServer, db: LiveDatabase, run_dir: Path, seconds: float) -> Row:
    script = ingest_script(api_headers("acme", "operator"))
    with start_peer(db, run_dir) as peer_server:
        peer = load(peer_server, db, "/ingest", seconds, script=script)
    expect(httpx.post(f"{server.url}/ingest/qc", json=report_body(),
                      headers=api_headers("acme", "operator")), 201)
    app = load(server, db, "/ingest/qc", seconds, script=script)
    return Row(f"single `POST /ingest/qc` ({wrk.CONNECTIONS} connections, {WORKERS} workers)",
               latency(app), f"bare Starlette + psycopg peer: {latency(peer)}",
               ratio(app.rps / peer.rps), "≥ 1.0x peer req/s; p99 ≤ 30 ms",
               app.rps >= peer.rps and app.p99_ms <= 30 and not app.errors and not peer.errors)


def batch_ingest(server: LiveServer, db: LiveDatabase, seconds: float) -> Row:
    headers = {**api_headers("acme", "operator"), "Content-Type": "application/json"}
    body = orjson.dumps(batch_body()).decode()
    expect(httpx.post(f"{server.url}/ingest/qc/batch", content=body, headers=headers,
                      timeout=30), 201)
    result = load(server, db, "/ingest/qc/batch", seconds, script=wrk.lua_post(headers, body))
    app_rate = result.rps * BATCH_SIZE
    # COPY exactly as many of the same rows as the timed run stored.
    count = max(result.requests - result.errors, 1) * BATCH_SIZE
    rows = copy_rows("acme", count)
    copy_rate = count / copy_seconds(db.owner_url, rows)
    log(f"  COPY of {count:,} rows: {copy_rate:,.0f} rows/s")
    return Row(f"`POST /ingest/qc/batch` ({BATCH_SIZE} per request)",
               f"{num(app_rate)} reports/s ({latency(result)})",
               f"psycopg `COPY` of the same {count:,} rows (owner): {num(copy_rate)} reports/s",
               ratio(app_rate / copy_rate), "≥ 0.5x COPY",
               app_rate >= 0.5 * copy_rate and not result.errors)


def rss(peaks: dict[str, int]) -> Row:
    mb = max(peaks.values()) / 1e6
    by_phase = ", ".join(f"{name} {peak / 1e6:.0f}" for name, peak in peaks.items())
    return Row("peak RSS of one API worker during the run",
               f"{mb:.0f} MB (MB by phase: {by_phase})", "—", "—", "≤ 150 MB", mb <= 150)


# -- processes ------------------------------------------------------------------------


@contextlib.contextmanager
def start_peer(db: LiveDatabase, run_dir: Path) -> Iterator[LiveServer]:
    """bench/peer.py under gunicorn with the app's worker class, count and keep-alive."""
    port = free_port()
    log_path = run_dir / "peer.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker",
             "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "--keep-alive", "75",
             # the API server already holds gunicorn's default control socket path
             "--no-control-socket", "bench.peer:app"],
            cwd=ROOT, env={**os.environ, "PEER_DATABASE_URL": db.owner_url},
            stdout=out, stderr=subprocess.STDOUT)
    peer = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_for_peer(peer)
        yield peer
    finally:
        peer.stop()


def wait_for_peer(peer: LiveServer) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            raise RuntimeError(f"peer exited early:\n{peer.log()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(f"{peer.url}/ingest", json=report_body(), timeout=2).status_code == 201:
                return
        time.sleep(0.2)
    raise RuntimeError(f"peer did not answer:\n{peer.log()[-4000:]}")


def postgres_version(owner_url: str) -> str:
    with psycopg.connect(owner_url) as conn:
        number = conn.info.server_version  # e.g. 160002 for 16.2
    return f"{number // 10000}.{number % 10000}"


# -- main -----------------------------------------------------------------------------


def bench(seconds: float, scale: float) -> tuple[list[Row], str]:
    counts = {tenant: round(n * scale) for tenant, n in REPORTS.items()}
    with contextlib.ExitStack() as stack:
        run_dir = Path(tempfile.mkdtemp(prefix="qcc-bench-"))
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        log(f"starting PostgreSQL under {run_dir}")
        db = start_database(run_dir / "db")
        stack.callback(db.stop)
        log(f"seeding {sum(counts.values()):,} reports ({counts})")
        started = time.monotonic()
        seed(db.owner_url, counts=counts, canonical_size=canonical_size())
        seeded_in = time.monotonic() - started
        log(f"seeded in {seeded_in:.0f} s; starting the API server ({WORKERS} workers)")
        server = start_server(db, workers=WORKERS, run_dir=run_dir / "server",
                              env={"RATE_LIMIT_PER_TENANT": "0"})
        stack.callback(server.stop)
        sampler = stack.enter_context(RssSampler(server.process.pid))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))

        # Reads first, while the tables hold exactly the seeded rows.
        phase(sampler, "reads", "/health, /reports, /reports with If-None-Match")
        read_rows = reads(server, db, client, seconds, sum(counts.values()))
        phase(sampler, "timeline", f"{TIMELINE_RUNS} requests, then the plain GROUP BY")
        timeline_row = timeline(client, db.owner_url, TIMELINE_TENANT, counts[TIMELINE_TENANT])
        phase(sampler, "single ingest", "the peer, then the app")
        single_row = single_ingest(server, db, run_dir, seconds)
        phase(sampler, "batch ingest", "the app, then COPY")
        batch_row = batch_ingest(server, db, seconds)
        rows = [single_row, batch_row, *read_rows, timeline_row, rss(sampler.peaks)]
        context = (f"{sum(counts.values()):,} reports seeded in {seeded_in:.0f} s; "
                   f"PostgreSQL {postgres_version(db.owner_url)}; {os.cpu_count()} CPUs; "
                   f"Python {platform.python_version()}; wrk -t{wrk.THREADS} "
                   f"-c{wrk.CONNECTIONS} -d{seconds:g}s after a {WARMUP_SECONDS} s warm-up")
    return rows, context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="each wrk run (default 10)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the 1 M seeded reports, for quick trials (default 1)")
    args = parser.parse_args(argv)
    # A plain `kill` must unwind too, so the servers and the database are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    # Other work on the machine skews every figure; the table says how busy it was.
    load_before = os.getloadavg()[0]
    wrk.ensure_installed()
    rows, context = bench(args.seconds, args.scale)
    elapsed = time.monotonic() - started
    text = (f"{render(rows)}\n{context}. Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
            f"in {elapsed / 60:.1f} min; 1-minute load average before the run: "
            f"{load_before:.1f}.\n")
    print(text, end="")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    log(f"written to {RESULTS.relative_to(ROOT)}")
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
