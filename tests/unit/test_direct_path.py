"""app/direct.py takes the operations in DIRECT past connexion's middleware chain (its
routing never sees them), every other request through it, and DIRECT_OPERATIONS=false
sends them all through it. In process, without a database: unauthenticated requests,
answered by the operation's own security (401) either way."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from connexion.middleware.routing import RoutingMiddleware

from app import config
from app.direct import DIRECT
from app.main import create_app


def answer(app: Any, method: str, path: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [], "state": {},
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body)


@pytest.mark.parametrize("direct", [True, False])
def test_the_direct_operations_skip_connexions_routing(monkeypatch, tmp_path, direct):
    routed: list[str] = []
    route = RoutingMiddleware.__call__

    async def counted(self: RoutingMiddleware, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await route(self, scope, receive, send)

    monkeypatch.setattr(RoutingMiddleware, "__call__", counted)
    app = create_app(config.load({"DATABASE_URL": "postgresql://unused@127.0.0.1:1/none",
                                  "COLLECTOR_DATA_DIR": str(tmp_path),
                                  "DIRECT_OPERATIONS": str(direct).lower()}))
    assert answer(app, "GET", "/no-such-path")[0] == 404  # connexion builds its operations
    for method, path in DIRECT:
        status, problem = answer(app, method, path)
        assert status == 401 and problem["detail"] == "missing X-Api-Key header"
        assert problem["instance"] == path
    expected = ["/no-such-path"] + ([] if direct else [path for _, path in DIRECT])
    assert routed == expected
