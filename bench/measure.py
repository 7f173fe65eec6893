"""Measurements that are not wrk runs: sequential HTTP latency, SQL timings, COPY, RSS."""

from __future__ import annotations

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


class RssSampler:
    """Peak resident memory of any single child (worker) of a gunicorn master."""

    def __init__(self, master_pid: int) -> None:
        self._master = psutil.Process(master_pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.peak_bytes = 0

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(RSS_EVERY_SECONDS)

    def _sample(self) -> None:
        try:
            workers = self._master.children()
        except psutil.NoSuchProcess:
            return
        for worker in workers:
            try:
                self.peak_bytes = max(self.peak_bytes, worker.memory_info().rss)
            except psutil.NoSuchProcess:  # a worker restarting between the two calls
                continue
