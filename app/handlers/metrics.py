"""GET /metrics: Prometheus text (or OpenMetrics when the scraper asks for it), aggregated
across gunicorn workers when multiprocess, plus gauges read from PostgreSQL at scrape time."""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client.exposition import choose_encoder

from app import observability, runtime
from app.config import ConfigError
from app.problems import problem_response
from app.services.ops import scrape

DATABASE_GAUGES = observability.DatabaseGauges()


async def _exposition(multiprocess_dir: str | None, accept: str) -> tuple[bytes, str]:
    extra = []
    try:
        live = runtime.get()
    except RuntimeError:  # not started (yet): process metrics only
        live = None
    if live is not None:
        observability.sample_pools(live.pools())
        observability.sample_replica_reads(live.replica_reads())
        version, git_sha = observability.build_labels(live.settings.git_sha)
        extra.append(observability.build_info_family(version, git_sha))
        extra += await DATABASE_GAUGES.get(lambda: scrape.database_snapshot(db=live.db))
        extra += observability.replica_families(live.replica_state())
    encoder, content_type = choose_encoder(accept)
    return encoder(observability.scrape_registry(multiprocess_dir, extra)), content_type


def metrics_app(token: str | None, multiprocess_dir: str | None, *,
                production: bool = False) -> Any:
    # The metrics name tenants (labels): production never serves them without a token.
    if token is None and production:
        raise ConfigError("METRICS_TOKEN is required when COLLECTOR_ENV=production")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if token is not None:
            given = dict(scope.get("headers", ())).get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given, f"Bearer {token}"):
                response = problem_response(401, "bearer METRICS_TOKEN required")
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"www-authenticate", b'Bearer realm="metrics"'),
                    (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": response.body})
                return
        accept = dict(scope.get("headers", ())).get(b"accept", b"").decode("latin-1")
        data, content_type = await _exposition(multiprocess_dir, accept)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode())]})
        await send({"type": "http.response.body", "body": data})
    return app
