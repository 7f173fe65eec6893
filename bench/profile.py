"""`make profile`: where each microsecond of a request goes, per hot path.

One API worker (so every request is the profiled process's), wrk at the bench's
concurrency on one path, py-spy sampling that worker meanwhile. Each sampled stack is
charged to the innermost frame that belongs to a known layer (the driver before the
storage module that called it, the validator before connexion, ...), and the samples
become microseconds per request: samples / rate / requests. Idle samples (the event
loop waiting on the network) are not recorded, so the table is CPU time of the worker
per request; what PostgreSQL spends on its side is the pgbench limit rows of `make bench`.

    .venv/bin/python -m bench.profile [--seconds 10] [--scale 0.02]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import psutil

from bench import wrk
from bench.run import LIST_PATH, REPORTS, api_headers, expect, ingest_script
from bench.seed import seed
from bench.workload import BATCH_SIZE, batch_body, canonical_size
from tools.liveserver import ROOT, start_database, start_server

RATE = 400  # samples per second
# (layer, pattern on "function (file:line)"), innermost match wins; order = priority
LAYERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in (
        ("metrics and logging", r"prometheus_client|app/observability|/logging/"),
        ("database driver (psycopg: round trips, row decoding)", r"psycopg|psycopg_pool"),
        ("storage (query text, parameters)", r"app/storage/"),
        ("body/parameter validation", r"app/validation|jsonschema"),
        ("auth, key cache, rate limit", r"app/security|app/services/access"),
        ("service (domain rules, ETag, cursors)", r"app/services/"),
        ("handler and response shaping", r"app/handlers/"),
        ("error rendering", r"app/errors|app/problems"),
        ("connexion (routing, parameters, security, response)", r"connexion/"),
        ("starlette", r"starlette/"),
        ("HTTP server (uvicorn, httptools)", r"uvicorn|httptools|h11"),
        ("event loop", r"asyncio|uvloop|selectors"),
    ))
OTHER = "other"


def classify(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for name, pattern in LAYERS:
            if pattern.search(frame):
                return name
    return OTHER


def profile_worker(pid: int, seconds: float, out: Path) -> Counter[str]:
    py_spy = str(Path(sys.executable).parent / "py-spy")
    subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", f"{round(seconds)}",
                    "--rate", str(RATE), "--format", "raw", "--output", str(out),
                    "--nonblocking"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    layers: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            layers[classify(stack)] += int(count)
    return layers


def measure(url: str, seconds: float, pid: int, run_dir: Path, name: str, *,
            headers: dict[str, str] | None = None, script: str | None = None
            ) -> tuple[Counter[str], wrk.WrkResult]:
    wrk.run(url, seconds=2, headers=headers, script=script)  # warm-up
    with wrk.Background(url, limit_seconds=seconds + 5, headers=headers,
                        script=script) as load:
        time.sleep(0.5)
        layers = profile_worker(pid, seconds, run_dir / f"{name}.txt")
        result = load.stop()
    return layers, result


def table(name: str, layers: Counter[str], result: wrk.WrkResult, seconds: float,
          per: int = 1) -> str:
    """µs per request, or per report of a batch (`per` reports in each request)."""
    requests = max(result.rps * seconds, 1) * per
    total = sum(layers.values())
    unit = "report" if per > 1 else "request"
    lines = [f"\n### {name}: {result.rps:,.0f} req/s on 1 worker, p50 {result.p50_ms:.2f} ms\n",
             f"| layer | µs per {unit} | share of the worker's CPU |", "|---|---|---|"]
    for layer, samples in layers.most_common():
        micros = samples / RATE / requests * 1e6
        lines.append(f"| {layer} | {micros:,.0f} | {samples / total:.0%} |")
    lines.append(f"| **all** | **{total / RATE / requests * 1e6:,.0f}** | 100% |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--scale", type=float, default=0.02)
    args = parser.parse_args(argv)
    wrk.ensure_installed()
    load_before = os.getloadavg()[0]
    out = [f"Per-request budget, py-spy at {RATE} Hz on the one API worker under wrk "
           f"-t{wrk.THREADS} -c{wrk.CONNECTIONS}; load average before: {load_before:.1f}."]
    with contextlib.ExitStack() as stack:
        run_dir = Path(tempfile.mkdtemp(prefix="qcc-profile-"))
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        db = start_database(run_dir / "db")
        stack.callback(db.stop)
        seed(db.owner_url, counts={t: round(n * args.scale) for t, n in REPORTS.items()},
             canonical_size=canonical_size())
        server = start_server(db, workers=1, run_dir=run_dir / "server",
                              env={"RATE_LIMIT_PER_TENANT": "0"})
        stack.callback(server.stop)
        worker = psutil.Process(server.process.pid).children()[0].pid
        viewer = api_headers("acme", "viewer")

        def unchanged() -> dict[str, str]:
            """The validator as it is now (after the ingest run changed the tenant)."""
            page = expect(httpx.get(f"{server.url}{LIST_PATH}", headers=viewer), 200)
            cached = {**viewer, "If-None-Match": page.headers["ETag"]}
            expect(httpx.get(f"{server.url}{LIST_PATH}", headers=cached), 304)
            return cached

        batch_headers = {**api_headers("acme", "operator"), "Content-Type": "application/json"}
        paths = [
            ("single POST /ingest/qc", "/ingest/qc", lambda: None,
             ingest_script(api_headers("acme", "operator"))),
            # the SELECT's path (a repeated plain GET is answered from memory, like the 304)
            (f"GET {LIST_PATH} (Cache-Control: no-cache)", LIST_PATH,
             lambda: {**viewer, "Cache-Control": "no-cache"}, None),
            (f"GET {LIST_PATH}, repeated (from memory)", LIST_PATH, lambda: viewer, None),
            ("the same, 304", LIST_PATH, unchanged, None),
            ("GET /timeline (48 h x hour)", "/timeline?bucket=hour", lambda: viewer, None),
            # last: its rows would change what the reads above read
            (f"POST /ingest/qc/batch ({BATCH_SIZE} reports)", "/ingest/qc/batch", lambda: None,
             wrk.lua_post(batch_headers, orjson.dumps(batch_body()).decode())),
        ]
        for name, path, make_headers, script in paths:
            headers = make_headers()
            layers, result = measure(f"{server.url}{path}", args.seconds, worker, run_dir,
                                     re.sub(r"\W+", "-", name), headers=headers, script=script)
            out.append(table(name, layers, result, args.seconds,
                             BATCH_SIZE if path.endswith("/batch") else 1))
    text = "\n".join(out)
    print(text)
    target = ROOT / "bench" / "results" / "profile.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
