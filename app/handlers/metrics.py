"""GET /metrics: Prometheus text, aggregated across gunicorn workers when multiprocess."""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.problems import problem_response


def _registry(multiprocess_dir: str | None) -> Any:
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY
    return REGISTRY


def metrics_app(token: str | None, multiprocess_dir: str | None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if token is not None:
            given = dict(scope.get("headers", ())).get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given, f"Bearer {token}"):
                response = problem_response(401, "bearer METRICS_TOKEN required")
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": response.body})
                return
        data = generate_latest(_registry(multiprocess_dir))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())]})
        await send({"type": "http.response.body", "body": data})
    return app
