"""Repeated reads answered from memory: a repeated If-None-Match gets its 304, and a
repeated GET its 200, before routing, validation and the database, when this process
knows that nothing changed.

Every full answer of a cacheable read (CACHEABLE: its ETag moves only with the tenant's
change version, and so does its body) teaches the process which ETag that URL has for
that tenant, and keeps the answer itself (headers and body) while the answers kept fit in
ANSWER_MEMORY_BYTES. PostgreSQL announces every change of a tenant at commit
(app/storage/changes.py, migration 0011); the announcement forgets what the process knew
about the tenant. A later GET of the same URL carrying an X-Api-Key this process already
verified (the key cache of app/services/access/keys.py, which bounds how long a revoked key
works) passes the same refused-credential throttle, role guard (generated from the spec's
x-roles), X-Tenant check and tenant rate limit as the full path, and is answered 304 when
its If-None-Match holds that ETag, else with the kept 200. Anything else — unknown URL,
other ETag without a kept answer, session cookie, `Cache-Control: no-cache` (or
`max-age=0`, `Pragma: no-cache`: the client asks for a fresh read), a header the contract
refuses (DECLARED_HEADERS, from generated/openapi.json), a refusal — takes the full path,
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

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app import runtime
from app.contract import BUNDLED
from app.errors import DomainError
from app.observability import FROM_MEMORY, request_state
from app.security import guard
from app.services.access import keys as key_service
from app.services.versions import matches
from app.validation import compiled

# Reads whose ETag is a function of (tenant version, URL) and nothing else (no "now").
CACHEABLE = frozenset({"reports.list_reports", "reports.get_report"})


def _declared_headers(spec_path: Path = BUNDLED) -> dict[str, dict[bytes, Any]]:
    """Each CACHEABLE operation's header parameters, as the contract declares them, with
    their compiled schemas: a header the full path refuses (400) is not answered from
    memory either (the query string needs no check: a kept answer is keyed by it, and it
    was validated by the full path that learned it)."""
    spec = orjson.loads(spec_path.read_bytes())
    shared = spec.get("components", {}).get("parameters", {})
    declared: dict[str, dict[bytes, Any]] = {}
    for item in spec["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or operation.get("operationId") not in CACHEABLE:
                continue
            headers = declared.setdefault(operation["operationId"], {})
            for parameter in [*item.get("parameters", ()), *operation.get("parameters", ())]:
                if "$ref" in parameter:
                    parameter = shared[parameter["$ref"].rsplit("/", 1)[-1]]
                if parameter["in"] == "header":
                    headers[parameter["name"].lower().encode()] = compiled(parameter["schema"])
    return declared


DECLARED_HEADERS = _declared_headers()
MAX_AGE_SECONDS = 5.0
STALE_AFTER_SECONDS = 3.0  # three missed heartbeats (app/storage/changes.py)
MAX_ENTRIES = 20_000
SAFE_METHODS = ("GET", "HEAD")
# One answer may take at most this share of ANSWER_MEMORY_BYTES (a page of 50 is ~25 KB).
ANSWER_SHARE = 16
# What an answer kept costs beyond its body (its headers, the entry): an estimate.
ANSWER_OVERHEAD = 512
# the counter's two series, looked up once
NOT_MODIFIED_FROM_MEMORY = FROM_MEMORY.labels("304")
KEPT_FROM_MEMORY = FROM_MEMORY.labels("200")
# Request directives that ask for a fresh read (RFC 9111 5.2.1, 5.4).
FRESH_DIRECTIVES = re.compile(rb"no-cache|max-age\s*=\s*0\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Answer:
    """A full 200 as the inner app sent it (headers as sent, body whole)."""
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @property
    def size(self) -> int:
        return len(self.body) + ANSWER_OVERHEAD


@dataclass(frozen=True, slots=True)
class Learned:
    etag: bytes
    operation: str
    since: int  # the change sequence when the full answer began
    at: float  # monotonic time it was learned
    answer: Answer | None = None  # the 200 itself, when kept


class Validators:
    """What this process knows about tenants' ETags (and the answers kept with them), and
    since when it has been told of every change. A monotonically increasing sequence
    orders changes and lessons: a lesson holds while no change of its tenant (and no
    reconnection) came after the moment its full answer began."""

    def __init__(self, answer_bytes: int = 0) -> None:
        self.sequence = 0
        self.connected_at = 0  # sequence of the last (re)connection
        self.alive_at = float("-inf")
        self.answer_bytes = answer_bytes  # room for kept answers; 0 keeps none
        self.answer_limit = answer_bytes // ANSWER_SHARE  # the most one answer may take
        self._answers_size = 0
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
        self._answers_size = 0

    # -- used per request ----------------------------------------------------------

    def listening(self) -> bool:
        return time.monotonic() - self.alive_at < STALE_AFTER_SECONDS

    def learn(self, tenant: str, path: str, query: bytes, etag: bytes, operation: str,
              since: int, answer: Answer | None = None) -> None:
        if not self._holds(tenant, since):
            return
        key = (tenant, path, query)
        previous = self._learned.get(key)
        if (answer is None and previous is not None and previous.etag == etag
                and self._holds(tenant, previous.since)):
            answer = previous.answer  # a 304 by the full path: the kept 200 still holds
        self._forget(key)
        if len(self._learned) >= MAX_ENTRIES:
            self._learned.clear()
            self._answers_size = 0
        if answer is not None and answer.size > self.answer_limit:
            answer = None
        if answer is not None:
            # the oldest lessons make room (insertion order: the first learned go first)
            while self._answers_size + answer.size > self.answer_bytes:
                self._forget(next(iter(self._learned)))
            self._answers_size += answer.size
        self._learned[key] = Learned(etag, operation, since, time.monotonic(), answer)

    def known(self, tenant: str, path: str, query: bytes) -> Learned | None:
        key = (tenant, path, query)
        found = self._learned.get(key)
        if found is None:
            return None
        if time.monotonic() - found.at >= MAX_AGE_SECONDS or not self._holds(tenant, found.since):
            self._forget(key)
            return None
        return found

    def _forget(self, key: tuple[str, str, bytes]) -> None:
        found = self._learned.pop(key, None)
        if found is not None and found.answer is not None:
            self._answers_size -= found.answer.size

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
        capture = _Capture(scope, send, limit=validators.answer_limit if method == "GET" else 0)
        await self.app(scope, receive, capture)
        if capture.etag is None or capture.status not in (200, 304) or method != "GET":
            return
        state = request_state(scope)
        operation = state.operation_id(scope)
        if operation in CACHEABLE and state.principal is not None and not _has_cookie(scope):
            validators.learn(state.principal.tenant, scope["path"], scope["query_string"],
                             capture.etag, operation, since, capture.answer())

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
            elif name in (b"cache-control", b"pragma") and FRESH_DIRECTIVES.search(value):
                return False
        if api_key is None:
            return False
        principal = rt.keys.get(key_service.hash_secret(api_key.decode("latin-1")))
        if principal is None:
            return False
        known = rt.validators.known(principal.tenant, scope["path"], scope["query_string"])
        if known is None or not _headers_valid(scope, known.operation):
            return False
        unchanged = if_none_match is not None and matches(if_none_match.decode("latin-1"),
                                                          known.etag.decode())
        answer = None if unchanged else known.answer
        if not unchanged and answer is None:
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
        if answer is None:
            NOT_MODIFIED_FROM_MEMORY.inc()
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", known.etag)]})
            await send({"type": "http.response.body", "body": b""})
        else:
            KEPT_FROM_MEMORY.inc()
            await send({"type": "http.response.start", "status": 200,
                        "headers": list(answer.headers)})
            await send({"type": "http.response.body", "body": answer.body})
        return True


def _headers_valid(scope: dict[str, Any], operation: str) -> bool:
    declared = DECLARED_HEADERS.get(operation, {})
    for name, value in scope["headers"]:
        schema = declared.get(name)
        if schema is not None and not schema.is_valid(value.decode("latin-1")):
            return False
    return True


class _Capture:
    """send() that notes a full answer's status and ETag on the way out, and keeps a copy
    of the headers and body (up to `limit` bytes; 0: none) of a CACHEABLE operation's 200."""

    __slots__ = ("etag", "headers", "limit", "parts", "scope", "send", "size", "status")

    def __init__(self, scope: dict[str, Any], send: Any, *, limit: int) -> None:
        self.scope = scope
        self.send = send
        self.limit = limit
        self.status = 0
        self.etag: bytes | None = None
        self.headers: tuple[tuple[bytes, bytes], ...] = ()
        self.parts: list[bytes] | None = None
        self.size = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers", ())
            for name, value in headers:
                if name.lower() == b"etag":
                    self.etag = value
            # routing is done when the answer starts: other reads' bodies are not copied
            if (self.limit and self.status == 200 and self.etag is not None
                    and request_state(self.scope).operation_id(self.scope) in CACHEABLE):
                self.headers = tuple((bytes(n), bytes(v)) for n, v in headers)
                self.parts = []
        elif kind == "http.response.body" and self.parts is not None:
            body = message.get("body", b"")
            self.size += len(body)
            if self.size > self.limit:
                self.parts = None  # too large to keep: only its ETag is learned
            elif body:
                self.parts.append(bytes(body))
        await self.send(message)

    def answer(self) -> Answer | None:
        if self.parts is None:
            return None
        return Answer(self.headers, b"".join(self.parts))


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
