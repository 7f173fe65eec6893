"""Optional OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans: the request (SERVER, with the request id, the W3C `traceparent` of the caller
honoured) -> the operation, i.e. the handler and the service it calls (named by the
spec's operationId) -> each SQL statement (opentelemetry-instrumentation-psycopg). Exported
over OTLP/HTTP (protobuf) in batches. A statement outside any request (background loops,
the ingest group commit, which serves many requests at once) would start a trace of its
own: those are not sampled, so the traces are the requests'.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from app.config import Settings

log = logging.getLogger("qc_collector.tracing")

_tracer: Any = None  # opentelemetry Tracer when enabled


def enabled() -> bool:
    return _tracer is not None


def configure(settings: Settings) -> bool:
    """Install the tracer provider, the exporter and the SQL instrumentation (once per
    process, after gunicorn's fork). Returns whether tracing is on."""
    global _tracer
    if not settings.otel_exporter_otlp_endpoint or _tracer is not None:
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind

    class RequestRooted(Sampler):
        """Traces start at a request; child spans follow their parent."""

        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: SpanKind | None = None, attributes: Any = None,
                          links: Sequence[Any] | None = None, trace_state: Any = None
                          ) -> SamplingResult:
            parent = trace.get_current_span(parent_context).get_span_context()
            if parent.is_valid:
                sampled = parent.trace_flags.sampled
            else:
                sampled = kind == SpanKind.SERVER
            return SamplingResult(Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP,
                                  attributes)

        def get_description(self) -> str:
            return "RequestRooted"

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name,
                                  "service.version": _version()}),
        sampler=RequestRooted())
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint),
                                                   schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    _tracer = trace.get_tracer("qc_collector")
    log.info("tracing: exporting spans over OTLP/HTTP")
    return True


@contextlib.contextmanager
def statement_span(statement: str) -> Iterator[None]:
    """A CLIENT span for SQL the instrumentation does not see (app/storage/db.py sends a
    versioned read through a client-side-binding cursor): the text as written, with its
    placeholders — never the bound values."""
    if _tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(statement.split(None, 1)[0], kind=SpanKind.CLIENT,
                                       attributes={"db.system": "postgresql",
                                                   "db.statement": statement}):
        yield


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("qc-collector")
    except metadata.PackageNotFoundError:
        return "unknown"


def shutdown() -> None:
    """Flush what is buffered (a stopping worker's last spans)."""
    if _tracer is not None:
        from opentelemetry import trace
        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()


class RequestSpans:
    """ASGI: one SERVER span per HTTP request (inside RequestObserver, which has set the
    request id). Named `METHOD operationId` once routing has named the operation."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if _tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from app.observability import RequestState, request_state

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = scope.get("method", "GET")
        with _tracer.start_as_current_span(
                f"{method} {scope.get('path', '')}", kind=SpanKind.SERVER,
                context=propagate.extract(carrier)) as span:
            state = request_state(scope)
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope.get("path", ""))
            span.set_attribute("qcc.request_id", state.request_id)

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                operation = RequestState.operation_id(scope)
                if operation:
                    span.update_name(f"{method} {operation}")
                    span.set_attribute("qcc.operation", operation)
                if state.principal is not None:
                    span.set_attribute("qcc.tenant", state.principal.tenant)


class OperationSpans:
    """connexion middleware just before the handler: a span around the handler and the
    service it calls, named by the operationId; the SQL spans nest under it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if _tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from app.observability import RequestState, request_state

        operation = RequestState.operation_id(scope) or "unrouted"
        with _tracer.start_as_current_span(operation) as span:
            span.set_attribute("qcc.request_id", request_state(scope).request_id)
            await self.app(scope, receive, send)
