"""Request ids, JSON logs, Prometheus metrics (multi-process safe), rejection counts.

RequestObserver is the outermost ASGI layer: it gives every request an id and a
RequestState that the inner layers fill in (operation, principal), then records the
outcome once the response has started.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter, Histogram

from app.services.principal import Principal

log = logging.getLogger("qc_collector.access")

REQUESTS = Counter("qcc_http_requests_total", "HTTP requests by operation and status",
                   ["operation", "status"])
LATENCY = Histogram("qcc_http_request_duration_seconds", "HTTP request latency by operation",
                    ["operation"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5))
INGESTED = Counter("qcc_reports_ingested_total", "Reports stored, by severity", ["severity"])
REJECTED = Counter("qcc_requests_rejected_total", "Requests refused, by tenant and reason",
                   ["tenant", "reason"])

HANDLER_PACKAGE = "app.handlers."
INGEST_OPERATIONS = frozenset({"ingest.ingest_report", "ingest.ingest_batch"})
# Ops latency histogram bounds in seconds (+Inf is the last bucket); migration 0007.
OPS_LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REJECTION_REASONS = {"400", "401", "403", "404", "409", "413", "415", "422", "429"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(slots=True)
class RequestState:
    request_id: str
    principal: Principal | None = None
    body: Any = None
    key_refusal: Exception | None = None  # why X-Api-Key was refused (app/security.py)

    @staticmethod
    def operation_id(scope: dict[str, Any]) -> str | None:
        """The spec's operationId (connexion stores the resolved handler path)."""
        routing = scope.get("extensions", {}).get("connexion_routing", {})
        resolved = routing.get("operation_id")
        return resolved.removeprefix(HANDLER_PACKAGE) if resolved else None


def request_state(scope: dict[str, Any]) -> RequestState:
    return scope["extensions"]["qcc"]


class RequestObserver:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state = RequestState(request_id)
        scope.setdefault("extensions", {})["qcc"] = state
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

    @staticmethod
    def _record(scope: dict[str, Any], state: RequestState, status: int, elapsed: float) -> None:
        operation = RequestState.operation_id(scope) or "unrouted"
        REQUESTS.labels(operation, str(status)).inc()
        LATENCY.labels(operation).observe(elapsed)
        reason = str(status)
        if reason in REJECTION_REASONS:
            tenant = state.principal.tenant if state.principal else "unknown"
            REJECTED.labels(tenant, reason).inc()
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


class OpsAccumulator:
    """Per-tenant request counts per minute for /ops/metrics, kept in process memory only
    until the next flush (app.services.ops.flush_loop adds them to PostgreSQL with one
    upsert, so every worker and replica contributes). Requests without an authenticated
    tenant belong to no tenant and are only in Prometheus."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int, bool], list[int]] = {}
        self.rejections: dict[tuple[str, int, str], int] = {}

    def add(self, tenant: str, ingest: bool, status: int, elapsed: float,
            now: float | None = None) -> None:
        minute = int((now if now is not None else time.time()) // 60) * 60
        row = self.requests.get((tenant, minute, ingest))
        if row is None:
            row = self.requests[(tenant, minute, ingest)] = [0] * (3 + len(OPS_LATENCY_BOUNDS) + 1)
        row[0] += 1
        if 400 <= status < 500:
            row[1] += 1
        elif status >= 500:
            row[2] += 1
        bucket = len(OPS_LATENCY_BOUNDS)
        for index, bound in enumerate(OPS_LATENCY_BOUNDS):
            if elapsed <= bound:
                bucket = index
                break
        row[3 + bucket] += 1
        reason = str(status)
        if reason in REJECTION_REASONS:
            key = (tenant, minute, reason)
            self.rejections[key] = self.rejections.get(key, 0) + 1

    def drain(self) -> tuple[dict[tuple[str, int, bool], list[int]], dict[tuple[str, int, str], int]]:
        requests, rejections = self.requests, self.rejections
        self.requests, self.rejections = {}, {}
        return requests, rejections

    def restore(self, requests: dict[tuple[str, int, bool], list[int]],
                rejections: dict[tuple[str, int, str], int]) -> None:
        """Puts back a batch whose flush failed (merged with what arrived meanwhile)."""
        for key, row in requests.items():
            mine = self.requests.setdefault(key, [0] * len(row))
            for index, value in enumerate(row):
                mine[index] += value
        for rkey, n in rejections.items():
            self.rejections[rkey] = self.rejections.get(rkey, 0) + n


OPS = OpsAccumulator()


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


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
