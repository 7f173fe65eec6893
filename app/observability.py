"""Request ids, JSON logs, Prometheus metrics (multi-process safe), rejection counts.

RequestObserver is the outermost ASGI layer: it gives every request an id and a
RequestState that the inner layers fill in (operation, principal), then records the
outcome once the response has started.

The /metrics exposition (`scrape`) merges every gunicorn worker's samples (prometheus
multiprocess files), each worker's process metrics (mirrored into those files with a
`pid` label, since the library's process collector sees only the scraping process), and
gauges derived from PostgreSQL at scrape time by one cheap query, cached a few seconds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from app.services.access.principal import Principal
from app.services.ops.metrics import LATENCY_BUCKETS, OPS

log = logging.getLogger("qc_collector.access")

# kind: api | probe (/health, /ready, /metrics) | static (console, Swagger UI, the spec),
# so rules and dashboards can leave probes and files out.
REQUESTS = Counter("qcc_http_requests_total", "HTTP requests by operation, status and kind",
                   ["operation", "status", "kind"])
LATENCY = Histogram("qcc_http_request_duration_seconds", "HTTP request latency by operation",
                    ["operation", "kind"],
                    buckets=LATENCY_BUCKETS)
INGESTED = Counter("qcc_reports_ingested_total", "Reports stored, by severity", ["severity"])
REJECTED = Counter("qcc_requests_rejected_total",
                   "API requests refused, by tenant and reason (unauthenticated, forbidden,"
                   " not_found, too_large, invalid, rate_limited)", ["tenant", "reason"])
# Read units opened for the replica, by who answered (primary: the replica was behind the
# read's start past READ_WAIT_SECONDS); counted from the Database's tallies when sampled.
REPLICA_READS = Counter("qcc_replica_reads_total", "Read units that could go to the replica,"
                        " by who served them (replica, primary)", ["served_by"])
# Repeated reads answered from a worker's memory (app/conditional.py), by status: against
# qcc_http_requests_total of the same operations, the share that never reached the database.
FROM_MEMORY = Counter("qcc_answers_from_memory_total",
                      "Repeated reads answered from the worker's memory, by status (200, 304)",
                      ["status"])
# Each worker's connection pools, sampled every few seconds; summed over live workers.
POOL = Gauge("qcc_db_pool", "Connections of this pod's pools by pool and state"
             " (in_use, idle, waiting = requests queued for a connection)",
             ["pool", "state"], multiprocess_mode="livesum")

HANDLER_PACKAGE = "app.handlers."
INGEST_OPERATIONS = frozenset({"ingest.ingest_report", "ingest.ingest_batch"})
# /metrics names the reason with a word
REJECTION_WORDS = {400: "invalid", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                   413: "too_large", 415: "invalid", 422: "invalid", 429: "rate_limited"}
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})
STATIC_PREFIXES = ("/console", "/ui", "/openapi.", "/favicon")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(slots=True)
class RequestState:
    request_id: str
    principal: Principal | None = None
    body: Any = None
    key_refusal: Exception | None = None  # why X-Api-Key was refused (app/security.py)
    operation: str | None = None  # set when answered ahead of routing (app/conditional.py)

    @staticmethod
    def operation_id(scope: dict[str, Any]) -> str | None:
        """The spec's operationId (connexion stores the resolved handler path)."""
        extensions = scope.get("extensions", {})
        state = extensions.get("qcc")
        if state is not None and state.operation is not None:
            return str(state.operation)
        routing = extensions.get("connexion_routing", {})
        resolved = routing.get("operation_id")
        return resolved.removeprefix(HANDLER_PACKAGE) if resolved else None


def request_state(scope: dict[str, Any]) -> RequestState:
    return scope["extensions"]["qcc"]


# The request this task is answering (set by RequestObserver). Handlers read it through
# app/handlers/_http.py; connexion's `request` proxy builds a new request object on each
# access (three per ingest, ~10 % of its CPU in process, measured with cProfile).
_SCOPE: ContextVar[dict[str, Any]] = ContextVar("qcc_request_scope")


def current_scope() -> dict[str, Any]:
    return _SCOPE.get()


def header(scope: dict[str, Any], name: str) -> str | None:
    """A request header's value (the first, as starlette's Headers.get)."""
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key == wanted:
            return value.decode("latin-1")
    return None


# The request series by (operation, status, kind): as bounded as the labels themselves
# (the spec's operations, "unrouted"; the statuses we answer).
_SERIES: dict[tuple[str, int, str], tuple[Any, Any]] = {}


class RequestObserver:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, "x-request-id")
        # 128 random bits in hex, as uuid4().hex but without building a UUID (a quarter)
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        state = RequestState(request_id)
        scope.setdefault("extensions", {})["qcc"] = state
        answering = _SCOPE.set(scope)
        started = time.perf_counter()
        status_holder = [500]

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, state, status_holder[0], time.perf_counter() - started)
            _SCOPE.reset(answering)

    @staticmethod
    def _record(scope: dict[str, Any], state: RequestState, status: int, elapsed: float) -> None:
        operation = RequestState.operation_id(scope) or "unrouted"
        kind = request_kind(scope.get("path", ""))
        series = _SERIES.get((operation, status, kind))
        if series is None:  # looked up once: .labels() locks and builds its key each call
            series = _SERIES[operation, status, kind] = (
                REQUESTS.labels(operation, str(status), kind), LATENCY.labels(operation, kind))
        series[0].inc()
        series[1].observe(elapsed)
        word = REJECTION_WORDS.get(status)
        if word is not None and kind == "api":  # a missing console file is no refusal
            tenant = state.principal.tenant if state.principal else "unknown"
            REJECTED.labels(tenant, word).inc()
        # Answered /ops/metrics reads are not counted: reading the numbers must not change
        # them (refused ones are).
        if state.principal is not None and not (operation.startswith("ops.") and status < 400):
            OPS.add(state.principal.tenant, operation in INGEST_OPERATIONS, status, elapsed)
        if status >= 400 or log.isEnabledFor(logging.DEBUG):
            log.log(logging.WARNING if status >= 500 else logging.INFO, "request", extra={
                "request_id": state.request_id, "method": scope.get("method"),
                "path": scope.get("path"), "operation": operation, "status": status,
                "ms": round(elapsed * 1000, 2),
                "tenant": state.principal.tenant if state.principal else None,
            })


def request_kind(path: str) -> str:
    if path in PROBE_PATHS:
        return "probe"
    if path.startswith(STATIC_PREFIXES):
        return "static"
    return "api"


# ---- the /metrics exposition ------------------------------------------------------------

# Series made at scrape time rather than by a metric object here (tools/check_ops.py checks
# rules and dashboards against these too).
SCRAPE_SERIES = frozenset({
    "qcc_build_info", "qcc_db_connections", "qcc_db_max_connections", "qcc_replica_lag_seconds",
    "qcc_replica_reads_enabled", "qcc_job_queue_depth", "qcc_job_queue_oldest_age_seconds",
    "qcc_workers_alive", "qcc_notifications_backlog", "qcc_notifications_dead",
    "qcc_export_rows_total", "qcc_export_bytes_total", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds",
    "process_open_fds", "process_max_fds", "python_info", "python_gc_objects_collected_total",
    "python_gc_objects_uncollectable_total", "python_gc_collections_total",
})
SCRAPE_CACHE_SECONDS = 5.0  # many scrapers (HA Prometheus pairs) cost one query per window
SAMPLE_SECONDS = 5.0
KNOWN_QUEUES = ("alerts", "exports", "maintenance")  # shown at 0 when empty: absent != idle


@functools.cache
def _git_sha() -> str:
    """The checkout's commit when there is one (images pass GIT_SHA instead)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def build_labels(git_sha: str | None) -> tuple[str, str]:
    try:
        version = metadata.version("qc-collector")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return version, git_sha or _git_sha()


class ProcessMirror:
    """This worker's process_* and python_gc_* samples written into the multiprocess files:
    the library's collectors only see the process that answers the scrape. Gauges keep one
    series per live worker (`pid`), counters add up every worker that ever ran."""

    def __init__(self) -> None:
        private = CollectorRegistry()  # the collectors register themselves somewhere
        self.sources = (ProcessCollector(registry=private), GCCollector(registry=private))
        self.gauges: dict[str, Gauge] = {}
        self.counters: dict[str, Counter] = {}
        self.last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def sample(self) -> None:
        for source in self.sources:
            for family in source.collect():
                for s in family.samples:
                    names = sorted(s.labels)
                    if family.type == "gauge":
                        gauge = self.gauges.get(s.name)
                        if gauge is None:
                            gauge = self.gauges[s.name] = Gauge(
                                s.name, family.documentation, names,
                                multiprocess_mode="liveall", registry=None)
                        (gauge.labels(**s.labels) if names else gauge).set(s.value)
                    elif family.type == "counter" and s.name.endswith("_total"):
                        counter = self.counters.get(family.name)
                        if counter is None:
                            counter = self.counters[family.name] = Counter(
                                family.name, family.documentation, names, registry=None)
                        key = (s.name, tuple(sorted(s.labels.items())))
                        delta, self.last[key] = s.value - self.last.get(key, 0.0), s.value
                        if delta > 0:
                            (counter.labels(**s.labels) if names else counter).inc(delta)


def sample_pools(pools: dict[str, Any]) -> None:
    """psycopg_pool statistics of this worker's pools (primary, replica)."""
    for name, pool in pools.items():
        stats = pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        POOL.labels(name, "in_use").set(max(size - idle, 0))
        POOL.labels(name, "idle").set(idle)
        POOL.labels(name, "waiting").set(stats.get("requests_waiting", 0))


_replica_tallies = {"replica": 0, "primary": 0}


def sample_replica_reads(tallies: dict[str, int] | None) -> None:
    """Adds what the Database counted since the last sample (its tallies only grow)."""
    for served_by, total in (tallies or {}).items():
        delta = total - _replica_tallies.get(served_by, 0)
        if delta > 0:
            REPLICA_READS.labels(served_by).inc(delta)
            _replica_tallies[served_by] = total


async def sample_loop(pools: Callable[[], dict[str, Any]], mirror: ProcessMirror | None,
                      replica_reads: Callable[[], dict[str, int] | None]) -> None:
    """Every worker keeps its own pool and process samples fresh (any one may be scraped)."""
    while True:
        try:
            sample_pools(pools())
            sample_replica_reads(replica_reads())
            if mirror is not None:
                mirror.sample()
        except Exception as exc:  # sampling must never take a worker down
            log.warning("metrics sampling failed: %s", exc.__class__.__name__)
        await asyncio.sleep(SAMPLE_SECONDS)


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def database_families(data: dict[str, Any]) -> list[Metric]:
    """The snapshot of storage.metrics turned into metric families."""
    families: list[Metric] = [
        _gauge("qcc_db_connections", "Client connections open on the database server",
               data.get("connections")),
        _gauge("qcc_db_max_connections", "The database server's max_connections",
               data.get("max_connections")),
        _gauge("qcc_workers_alive", "Job workers with a heartbeat in the last 60 s",
               data.get("workers_alive")),
        _gauge("qcc_notifications_backlog", "Alert deliveries not yet sent (pending, sending)",
               data.get("notifications_backlog")),
        _gauge("qcc_notifications_dead", "Alert deliveries in the dead-letter list",
               data.get("notifications_dead")),
    ]
    depth = GaugeMetricFamily("qcc_job_queue_depth", "Jobs waiting to run, by queue",
                              labels=["queue"])
    age = GaugeMetricFamily("qcc_job_queue_oldest_age_seconds",
                            "Age of the oldest job waiting to run, by queue", labels=["queue"])
    queues = {name: [0, 0.0] for name in KNOWN_QUEUES}
    queues.update(data.get("queues") or {})
    for queue, (count, oldest) in sorted(queues.items()):
        depth.add_metric([queue], count)
        age.add_metric([queue], max(float(oldest or 0.0), 0.0))
    rows = CounterMetricFamily("qcc_export_rows", "Rows written by finished exports")
    rows.add_metric([], data.get("export_rows", 0))
    written = CounterMetricFamily("qcc_export_bytes", "Bytes (gzip) written by finished exports")
    written.add_metric([], data.get("export_bytes", 0))
    return [*families, depth, age, rows, written]


class DatabaseGauges:
    """Scrape-time gauges from one statement, cached SCRAPE_CACHE_SECONDS; a failed read
    leaves them out (the scrape itself still answers)."""

    def __init__(self) -> None:
        self.at = -SCRAPE_CACHE_SECONDS
        self.families: list[Metric] = []
        self.lock = asyncio.Lock()

    async def get(self, fetch: Callable[[], Any]) -> list[Metric]:
        async with self.lock:
            if time.monotonic() - self.at >= SCRAPE_CACHE_SECONDS:
                try:
                    self.families = database_families(await fetch())
                except Exception as exc:
                    log.warning("metrics snapshot failed: %s", exc.__class__.__name__)
                    self.families = []
                self.at = time.monotonic()
            return self.families


@dataclass(frozen=True, slots=True)
class ReplicaState:
    reads_enabled: bool  # False: fallen back to the primary
    lag_seconds: float | None


def replica_families(state: ReplicaState | None) -> list[Metric]:
    if state is None:  # no DATABASE_READ_URL: the series are absent
        return []
    return [
        _gauge("qcc_replica_reads_enabled",
               "1 = reads go to the replica, 0 = fallen back to the primary",
               1 if state.reads_enabled else 0),
        _gauge("qcc_replica_lag_seconds", "Replay lag of the read replica (NaN: unknown)",
               state.lag_seconds if state.lag_seconds is not None else float("nan")),
    ]


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class _Whole:
    """The default registry (single-process mode) inside a per-scrape registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


def scrape_registry(multiprocess_dir: str | None, extra: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry()
    if multiprocess_dir:
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        registry.register(PlatformCollector(registry=None))  # python_info: one interpreter
    else:
        registry.register(_Whole())
    registry.register(_Families(extra))
    return registry


def build_info_family(version: str, git_sha: str) -> Metric:
    family = GaugeMetricFamily("qcc_build_info", "The running build (always 1)",
                               labels=["version", "git_sha"])
    family.add_metric([version, git_sha], 1)
    return family


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Only fields we put in `extra` — never headers or bodies."""

    FIELDS = ("request_id", "method", "path", "operation", "status", "ms", "tenant")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
