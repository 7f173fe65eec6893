"""RequestObserver's view of the request being answered (app/observability.py)."""

from __future__ import annotations

import asyncio

from app.observability import RequestObserver, current_scope, header


def test_the_request_being_answered_is_read_from_its_scope():
    """Handlers read headers through the scope RequestObserver keeps for the request;
    names match in any case, the first value wins, an absent one is None."""
    seen = {}

    async def app(scope, receive, send):
        seen["scope"] = current_scope()
        seen["key"] = header(current_scope(), "Idempotency-Key")
        seen["missing"] = header(current_scope(), "if-none-match")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message):
        pass

    scope = {"type": "http", "method": "POST", "path": "/ingest/qc",
             "headers": [(b"idempotency-key", b"first"), (b"idempotency-key", b"second")]}
    asyncio.run(RequestObserver(app)(scope, None, send))
    assert seen == {"scope": scope, "key": "first", "missing": None}
