"""The HTTP edge's own rules, before routing: request limits beyond bodies, the body read
deadline, and the headers every response carries.

Limits (each a problem+json, never a hang): URL over MAX_URL_BYTES → 414, more than
MAX_HEADERS header fields → 431, more than MAX_QUERY_PARAMS query parameters or a control
character (U+0000-U+001F, U+007F) in the decoded path → 400, a body
not received within BODY_TIMEOUT seconds of its first read (slow or shorter than its
Content-Length) → 408 and the connection is closed. The request head itself (size and
read timeout) is limited in the server protocol (app/server.py).

Response headers: `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
on every response; `Strict-Transport-Security` when the request came over TLS (directly,
or X-Forwarded-Proto from a proxy in FORWARDED_ALLOW_IPS, which uvicorn applies before
this layer); `Cache-Control: private` and `Vary` on authenticated answers unless the
handler chose (`no-store` for secrets and sessions); a 401 names its scheme in
`WWW-Authenticate`. CORS: none unless CORS_ALLOW_ORIGINS lists origins (starlette's
CORSMiddleware, then, for those origins only).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.middleware.cors import CORSMiddleware

from app.config import Settings
from app.errors import RequestTimeout
from app.observability import RequestState, request_state
from app.problems import problem_response

WWW_AUTHENTICATE = b'ApiKey realm="qc-collector", header="X-Api-Key"'
VARY = b"X-Api-Key, Cookie, X-Tenant"
HSTS = b"max-age=31536000; includeSubDomains"
# Operations whose answers hold a secret or a capability: never stored by any cache.
NO_STORE = frozenset({"keys.create_key", "keys.rotate_key", "bff.create_session",
                      "bff.get_session", "bff.delete_session", "exports.get_export",
                      "exports.create_export", "exports.download_export"})
SESSION_COOKIE = "qcc_session"
SECURE_SESSION_COOKIE = "__Host-qcc_session"


def _control_character(path: str) -> str | None:
    """The first C0 control or DEL in the decoded path, if any."""
    return next((ch for ch in path if ch < " " or ch == "\x7f"), None)


class RequestGuard:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.settings = settings
        self.app = app
        if settings.cors_allow_origins:
            self.app = CORSMiddleware(
                app, allow_origins=list(settings.cors_allow_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["X-Api-Key", "X-Tenant", "Content-Type", "Idempotency-Key",
                               "If-None-Match", "X-Request-Id"],
                expose_headers=["ETag", "Location", "Link", "Retry-After", "X-Request-Id",
                                "Idempotent-Replayed", "Content-Digest"],
                allow_credentials=False, max_age=600)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _send_problem(send, *refusal)
            return
        if self.settings.console_insecure_cookies:
            scope["headers"] = _session_cookie_renamed(scope["headers"])
        https = scope.get("scheme") == "https"
        timed = _TimedReceive(receive, self.settings.body_timeout)

        async def send_hardened(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._harden(scope, message["status"],
                                                  list(message.get("headers", ())), https)
            await send(message)

        await self.app(scope, timed, send_hardened)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        settings = self.settings
        url_bytes = len(scope.get("raw_path") or scope.get("path", "").encode()) \
            + len(scope.get("query_string", b""))
        if url_bytes > settings.max_url_bytes:
            return 414, f"the URL exceeds {settings.max_url_bytes} bytes", []
        control = _control_character(scope.get("path", ""))
        if control is not None:
            # starlette's mounts match `.*`, which stops at a newline: such a path would
            # otherwise be an undocumented 404 instead of naming the bad byte
            return 400, f"the path contains the control character U+{ord(control):04X}", []
        if len(scope.get("headers", ())) > settings.max_headers:
            return 431, f"more than {settings.max_headers} header fields", []
        query = scope.get("query_string", b"")
        if query and query.count(b"&") + 1 > settings.max_query_params:
            return 400, f"more than {settings.max_query_params} query parameters", []
        return None

    def _harden(self, scope: dict[str, Any], status: int, headers: list[tuple[bytes, bytes]],
                https: bool) -> list[tuple[bytes, bytes]]:
        names = {k.lower() for k, _ in headers}
        extra = []
        if b"x-content-type-options" not in names:
            extra.append((b"x-content-type-options", b"nosniff"))
        if b"referrer-policy" not in names:
            extra.append((b"referrer-policy", b"no-referrer"))
        if https:
            extra.append((b"strict-transport-security", HSTS))
        if status == 401 and b"www-authenticate" not in names:
            extra.append((b"www-authenticate", WWW_AUTHENTICATE))
        operation = RequestState.operation_id(scope) or ""
        state = scope.get("extensions", {}).get("qcc")
        authenticated = state is not None and request_state(scope).principal is not None
        if b"cache-control" not in names:
            if operation in NO_STORE or status == 401:
                extra.append((b"cache-control", b"no-store"))
            elif authenticated:
                extra.append((b"cache-control", b"private"))
        if authenticated and b"vary" not in names:
            extra.append((b"vary", VARY))
        return headers + extra


class _TimedReceive:
    """receive() with one deadline for the whole body, counted from its first read; once
    the body is complete, reads pass through (a streamed answer waits for a disconnect)."""

    def __init__(self, receive: Any, seconds: float) -> None:
        self._receive = receive
        self._seconds = seconds
        self._deadline: float | None = None
        self._done = False

    async def __call__(self) -> dict[str, Any]:
        if self._done:
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self._seconds
        try:
            async with asyncio.timeout(max(0.0, self._deadline - loop.time())):
                message: dict[str, Any] = await self._receive()
        except TimeoutError:
            self._done = True
            raise RequestTimeout(f"the request body did not arrive within "
                                 f"{self._seconds:g} s") from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message


def _session_cookie_renamed(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Without Secure (plain-http development) the cookie cannot carry the __Host- prefix
    that the contract names; it is renamed on the way in."""
    plain = f"{SESSION_COOKIE}=".encode()
    prefixed = f"{SECURE_SESSION_COOKIE}=".encode()
    out = []
    for name, value in headers:
        if name == b"cookie" and plain in value and prefixed not in value:
            value = b"; ".join(prefixed + part.strip()[len(plain):]
                               if part.strip().startswith(plain) else part.strip()
                               for part in value.split(b";"))
        out.append((name, value))
    return out


async def _send_problem(send: Any, status: int, detail: str,
                        headers: list[tuple[bytes, bytes]]) -> None:
    response = problem_response(status, detail)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(response.body)).encode()),
        (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"),
        (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": response.body})
