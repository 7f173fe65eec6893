"""Measurements that are not wrk runs: sequential HTTP latency, SQL timings, COPY, RSS, CPU."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import psutil
import psycopg

from bench.workload import REPORT_COLUMNS

RSS_EVERY_SECONDS = 0.5
# Idle: the workers together under 5 % of a CPU for two half-second windows in a row.
IDLE_CPU_PERCENT = 5.0
IDLE_WINDOW_SECONDS = 0.5
IDLE_WINDOWS = 2
ACTIVE_CLIENTS = """
SELECT count(*) FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
"""


def http_p50_ms(client: httpx.Client, path: str, params: Callable[[], dict[str, str]], *,
                headers: dict[str, str], runs: int, warmup: int = 5) -> float:
    """Median latency of `runs` sequential GETs, each with freshly computed params."""
    timings = []
    for n in range(warmup + runs):
        query = params()
        started = time.perf_counter()
        response = client.get(path, params=query, headers=headers)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        if n >= warmup:
            timings.append(elapsed * 1000)
    return statistics.median(timings)


def sql_median_ms(conninfo: str, query: str, params: dict[str, Any], *, runs: int) -> float:
    """Median wall time of running `query` to its last row, on one UTC session."""
    timings = []
    with psycopg.connect(conninfo, options="-c TimeZone=UTC") as conn:
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute(query, params).fetchall()
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def copy_seconds(conninfo: str, rows: Sequence[Sequence[Any]]) -> float:
    """Wall time of one COPY of `rows` into reports, committed."""
    statement = f"COPY reports ({', '.join(REPORT_COLUMNS)}) FROM STDIN"
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def wait_until_idle(master_pid: int, conninfo: str, *, timeout: float = 60) -> None:
    """Until a gunicorn master's workers use no CPU and the database runs no other
    client's statement (the server is done with the requests a stopped wrk left in
    flight), or `timeout` seconds."""
    workers = psutil.Process(master_pid).children()
    for worker in workers:
        worker.cpu_percent()  # the first call only starts the measurement
    quiet = 0
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while quiet < IDLE_WINDOWS and time.monotonic() < deadline:
            time.sleep(IDLE_WINDOW_SECONDS)
            busy = sum(worker.cpu_percent() for worker in workers)
            active = conn.execute(ACTIVE_CLIENTS).fetchone()
            idle = busy < IDLE_CPU_PERCENT and active == (0,)
            quiet = quiet + 1 if idle else 0


class CpuMeter:
    """CPU seconds (user + system) of a gunicorn master's workers and of every PostgreSQL
    process on the machine (the bench's own database is the only one) from `start` to
    `per_request`, divided by the requests counted: what a request costs each side. On 2 cores shared
    with wrk, throughput is bounded by the sum."""

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid
        self.started = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        workers = postgres = 0.0
        for child in psutil.Process(self.master_pid).children():
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                workers += times.user + times.system
        for process in psutil.process_iter(["name"]):
            if (process.info["name"] or "").startswith("postgres"):
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    postgres += times.user + times.system
        return workers, postgres

    def start(self) -> None:
        self.started = self._now()

    def per_request(self, requests: int) -> tuple[float, float]:
        workers, postgres = self._now()
        return ((workers - self.started[0]) / max(requests, 1) * 1e6,
                (postgres - self.started[1]) / max(requests, 1) * 1e6)


class RssSampler:
    """Peak resident memory of any single child (worker) of a gunicorn master — or, with
    children=False, of one process itself — for each phase of the run (the caller sets
    `phase`)."""

    def __init__(self, pid: int, *, children: bool = True, every: float = RSS_EVERY_SECONDS,
                 phase: str = "start-up") -> None:
        self._process = psutil.Process(pid)
        self._children = children
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.phase = phase
        self.peaks: dict[str, int] = {}  # phase -> bytes

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # and once more at the end, so a short phase has its figure

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._every)

    def _sample(self) -> None:
        try:
            processes = self._process.children() if self._children else [self._process]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:  # a worker restarting between the two calls
                continue
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
