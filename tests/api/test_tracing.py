"""Tracing: off by default; with OTEL_EXPORTER_OTLP_ENDPOINT set, a request's span tree
(request -> operation -> SQL, carrying the request id and the caller's trace) reaches a
local OTLP/HTTP receiver that decodes the protobuf like a collector does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app import tracing
from app.config import Settings
from tests.factories import headers
from tools.liveserver import key_for, start_server


class Receiver:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.content_types: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.content_types.add(self.headers["Content-Type"])
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            receiver.spans.append({
                                "path": self.path, "service": service.get("service.name"),
                                "name": span.name, "kind": span.kind,
                                "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": {a.key: a.value.string_value or a.value.int_value
                                               for a in span.attributes}})
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def traced(database, tmp_path_factory) -> Iterator[tuple[Any, Receiver]]:
    receiver = Receiver()
    server = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("traced"),
                          env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                               "OTEL_SERVICE_NAME": "qcc-test"})
    yield server, receiver
    server.stop()
    receiver.http.shutdown()
    receiver.http.server_close()


def test_tracing_is_off_by_default():
    assert tracing.configure(Settings()) is False and not tracing.enabled()


def test_a_request_span_tree_reaches_the_otlp_receiver(traced):
    server, receiver = traced
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        r = http.get("/reports", params={"severity": "block"}, headers=headers(
            role="viewer", **{"X-Request-Id": "trace-me-0001",
                              "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}))
        assert r.status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tree = [s for s in receiver.spans if s["trace_id"] == caller_trace]
        if {1, 2, 3} <= {s["kind"] for s in tree}:  # internal, server, client all arrived
            break
        time.sleep(0.2)
    assert receiver.content_types == {"application/x-protobuf"}
    assert {s["path"] for s in receiver.spans} == {"/v1/traces"}
    request = [s for s in tree if s["kind"] == 2]  # SPAN_KIND_SERVER
    assert len(request) == 1, tree
    [request_span] = request
    assert request_span["name"] == "GET reports.list_reports"
    assert request_span["parent"] == "00f067aa0ba902b7"  # the caller's span
    assert request_span["attributes"]["qcc.request_id"] == "trace-me-0001"
    assert request_span["attributes"]["http.response.status_code"] == 200
    assert request_span["service"] == "qcc-test"
    children = [s for s in tree if s["parent"] == request_span["span_id"]]
    # the key lookup runs before the operation (authentication), as a statement of its own
    assert any("qcc_lookup_api_key" in s["attributes"].get("db.statement", "") for s in children)
    [operation] = [s for s in children if s["kind"] == 1]  # SPAN_KIND_INTERNAL
    assert operation["name"] == "reports.list_reports"
    assert operation["attributes"]["qcc.request_id"] == "trace-me-0001"
    sql = [s for s in tree if s["parent"] == operation["span_id"]]
    assert sql and all(s["kind"] == 3 for s in sql)  # SPAN_KIND_CLIENT: the statements
    assert any("FROM reports" in s["attributes"]["db.statement"] for s in sql)
    # statements travel with placeholders: no parameter (key hash, tenant) is exported
    assert key_for("acme", "viewer") not in repr(receiver.spans)
    assert not any("acme" in s["attributes"].get("db.statement", "") for s in receiver.spans)
    # background statements (ops flush, checks) start no traces of their own
    assert all(s["kind"] == 2 or s["parent"] for s in receiver.spans)
