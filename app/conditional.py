"""Conditional reads answered from memory: a repeated If-None-Match gets its 304 before
routing, validation and the database, when this process knows that nothing changed.

Every full answer of a cacheable read (CACHEABLE: its ETag moves only with the tenant's
change version) teaches the process which ETag that URL has for that tenant. PostgreSQL
announces every change of a tenant at commit (app/storage/changes.py, migration 0011);
the announcement forgets what the process knew about the tenant. A later request for
the same URL whose If-None-Match holds that ETag, carrying an X-Api-Key this process
already verified (the key cache of app/services/access/keys.py, which bounds how long a revoked
key works), passes the same refused-credential throttle, role guard (generated from the spec's
x-roles), X-Tenant check and tenant rate limit as the full path, and is answered 304.
Anything else — unknown URL, other ETag, session cookie, a refusal — takes the full path,
which renders the answer exactly as before.

Staleness: a change committed by another process is forgotten when its notification
arrives (milliseconds; measured in tests/api/test_conditional_memory.py); a write
answered by this process is forgotten before its answer is sent (read-your-writes on
the same process). If notifications stop (connection lost, heartbeat not echoed within
STALE_AFTER_SECONDS) nothing is answered from memory, and nothing learned is used for
more than MAX_AGE_SECONDS, which bounds a silently broken channel (e.g. a transaction
pooler that drops notifications).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app import runtime
from app.errors import DomainError
from app.observability import request_state
from app.security import guard
from app.services.access import keys as key_service
from app.services.versions import matches

# Reads whose ETag is a function of (tenant version, URL) and nothing else (no "now").
CACHEABLE = frozenset({"reports.list_reports", "reports.get_report"})
MAX_AGE_SECONDS = 5.0
STALE_AFTER_SECONDS = 3.0  # three missed heartbeats (app/storage/changes.py)
MAX_ENTRIES = 20_000
SAFE_METHODS = ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class Learned:
    etag: bytes
    operation: str
    since: int  # the change sequence when the full answer began
    at: float  # monotonic time it was learned


class Validators:
    """What this process knows about tenants' ETags, and since when it has been told of
    every change. A monotonically increasing sequence orders changes and lessons: a
    lesson holds while no change of its tenant (and no reconnection) came after the
    moment its full answer began."""

    def __init__(self) -> None:
        self.sequence = 0
        self.connected_at = 0  # sequence of the last (re)connection
        self.alive_at = float("-inf")
        self._changed_at: dict[str, int] = {}
        self._learned: dict[tuple[str, str, bytes], Learned] = {}

    # -- told by the listener ------------------------------------------------------

    def changed(self, tenant: str) -> None:
        self.sequence += 1
        self._changed_at[tenant] = self.sequence

    def alive(self) -> None:
        self.alive_at = time.monotonic()

    def lost(self) -> None:
        self.sequence += 1
        self.connected_at = self.sequence
        self.alive_at = float("-inf")
        self._learned.clear()

    # -- used per request ----------------------------------------------------------

    def listening(self) -> bool:
        return time.monotonic() - self.alive_at < STALE_AFTER_SECONDS

    def learn(self, tenant: str, path: str, query: bytes, etag: bytes, operation: str,
              since: int) -> None:
        if not self._holds(tenant, since):
            return
        if len(self._learned) >= MAX_ENTRIES:
            self._learned.clear()
        self._learned[(tenant, path, query)] = Learned(etag, operation, since, time.monotonic())

    def known(self, tenant: str, path: str, query: bytes) -> Learned | None:
        found = self._learned.get((tenant, path, query))
        if found is None:
            return None
        if time.monotonic() - found.at >= MAX_AGE_SECONDS or not self._holds(tenant, found.since):
            del self._learned[(tenant, path, query)]
            return None
        return found

    def _holds(self, tenant: str, since: int) -> bool:
        return (self.listening() and self.connected_at <= since
                and self._changed_at.get(tenant, 0) <= since)


class ConditionalReads:
    """ASGI layer ahead of connexion: answers what memory can, learns from the rest."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rt = runtime.current()
        if rt is None:
            await self.app(scope, receive, send)
            return
        validators = rt.validators
        method = scope["method"]
        if method not in SAFE_METHODS:
            await self.app(scope, receive, _forgetting(scope, send, validators))
            return
        if method == "GET" and validators.listening():
            if await self._answer_from_memory(scope, send, rt):
                return
        since = validators.sequence
        captured: list[Any] = [0, None]

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured[0] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"etag":
                        captured[1] = value
            await send(message)

        await self.app(scope, receive, capture)
        status, etag = captured
        if etag is None or status not in (200, 304) or method != "GET":
            return
        state = request_state(scope)
        operation = state.operation_id(scope)
        if operation in CACHEABLE and state.principal is not None and not _has_cookie(scope):
            validators.learn(state.principal.tenant, scope["path"], scope["query_string"],
                             etag, operation, since)

    @staticmethod
    async def _answer_from_memory(scope: dict[str, Any], send: Any, rt: Any) -> bool:
        if_none_match = api_key = x_tenant = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"x-tenant":
                x_tenant = value
            elif name == b"cookie":
                return False
        if if_none_match is None or api_key is None:
            return False
        principal = rt.keys.get(key_service.hash_secret(api_key.decode("latin-1")))
        if principal is None:
            return False
        known = rt.validators.known(principal.tenant, scope["path"], scope["query_string"])
        if known is None or not matches(if_none_match.decode("latin-1"), known.etag.decode()):
            return False
        client = scope.get("client")
        try:
            rt.credential_throttle.check(str(client[0]) if client else "unknown")
            guard(principal, known.operation,
                  x_tenant.decode("latin-1") if x_tenant is not None else None)
            rt.limiter.take(principal.tenant)
        except DomainError:
            return False  # the full path refuses it the same way, rendered as usual
        state = request_state(scope)
        state.principal = principal
        state.operation = known.operation
        if rt.keys.should_touch(principal.key_id):
            rt.spawn(key_service.touch(db=rt.db, principal=principal))
        await send({"type": "http.response.start", "status": 304,
                    "headers": [(b"etag", known.etag)]})
        await send({"type": "http.response.body", "body": b""})
        return True


def _forgetting(scope: dict[str, Any], send: Any, validators: Validators) -> Any:
    """send() that forgets the writer's tenant before the write's answer leaves."""

    async def forget_then_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            principal = request_state(scope).principal
            if principal is not None:
                validators.changed(principal.tenant)
        await send(message)

    return forget_then_send


def _has_cookie(scope: dict[str, Any]) -> bool:
    return any(name == b"cookie" for name, _ in scope["headers"])
