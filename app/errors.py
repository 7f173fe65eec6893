"""One exception tree for the domain, and the one function that renders problem+json.

Services raise these with data; the renderer turns any of them (and connexion's and
starlette's own HTTP errors) into an RFC 9457 document. A 5xx is a bug and is logged.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from http import HTTPStatus
from typing import Any

import orjson
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from generated.operations import OPERATIONS

log = logging.getLogger("qc_collector.errors")

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    status = 500
    detail = "internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(DomainError):
    status = 400
    detail = "bad request"


class Unauthorized(DomainError):
    status = 401
    detail = "missing or unknown API key"


class Forbidden(DomainError):
    status = 403
    detail = "forbidden"


class NotFound(DomainError):
    status = 404
    detail = "not found"


class RequestTimeout(DomainError):
    """The request body did not arrive in time; the connection is closed after the answer."""

    status = 408
    detail = "the request body did not arrive in time"

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class Conflict(DomainError):
    status = 409
    detail = "conflict"


class IdempotencyInFlight(Conflict):
    detail = "a request with this Idempotency-Key is still in flight; retry later"


class PayloadTooLarge(DomainError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds {limit} bytes", limit=limit)


class UnsupportedMediaType(DomainError):
    status = 415
    detail = "unsupported media type"


class Unprocessable(DomainError):
    status = 422
    detail = "invalid submission"


class InvalidBody(Unprocessable):
    """The JSON is well formed but breaks the contract; errors name each bad field."""

    def __init__(self, errors: list[dict[str, str]], invalid_indexes: list[int] | None = None):
        extra: dict[str, Any] = {"errors": errors}
        if invalid_indexes is not None:
            extra["invalid_indexes"] = invalid_indexes
            detail = f"{len(invalid_indexes)} invalid item(s): {invalid_indexes[:20]}"
        else:
            detail = "; ".join(f"{e['pointer'] or '/'}: {e['detail']}" for e in errors[:5])
        super().__init__(detail, **extra)


class IdempotencyKeyReused(Unprocessable):
    detail = "this Idempotency-Key was used with a different request body"


class RateLimited(DomainError):
    status = 429

    def __init__(self, *, limit: int, burst: int, retry_after: int) -> None:
        super().__init__(
            f"rate limit of {limit} requests/s (burst {burst}) exceeded for this tenant",
            limit=limit,
        )
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyAttempts(RateLimited):
    """Too many failed keys (or logins) from one client address in a window."""

    def __init__(self, *, limit: int, window: int, retry_after: int) -> None:
        DomainError.__init__(
            self, f"more than {limit} attempts from this address in {window} s; "
            f"retry after {retry_after} s", limit=limit)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    status = 503
    detail = "service unavailable"


def problem_response(
    status: int, detail: str | None, *, headers: dict[str, str] | None = None,
    instance: str | None = None, **extra: Any,
) -> ConnexionResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return ConnexionResponse(
        status_code=status,
        body=orjson.dumps(body),
        content_type=PROBLEM_JSON,
        headers=headers or {},
    )


@cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", op.path) + "$"), op.method)
            for op in OPERATIONS]


def allowed_methods(path: str) -> str:
    """The contract's methods for a concrete path, for the Allow header of a 405."""
    return ", ".join(sorted({method for pattern, method in _path_patterns()
                             if pattern.match(path)}))


def render(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """The one renderer: every error leaves the service through here."""
    path = request.url.path
    if isinstance(exc, DomainError):
        if exc.status >= 500:
            log.error("request failed: %s", exc.detail)
        return problem_response(exc.status, exc.detail, headers=exc.headers, instance=path,
                                **exc.extra)
    if isinstance(exc, ProblemException):
        detail = exc.detail if isinstance(exc.detail, str) else None
        status = exc.status or 500
        if status == 401 and detail and "No authorization token provided" in detail:
            detail = "missing X-Api-Key header"
        if status >= 500:
            log.error("request failed: %s", detail)
        return problem_response(status, detail, headers=dict(exc.headers or {}), instance=path)
    if isinstance(exc, HTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(path)
        return problem_response(exc.status_code, str(exc.detail), headers=headers, instance=path)
    log.exception("unhandled error on %s", path, exc_info=exc)
    return problem_response(500, "internal error; the request id is in the logs", instance=path)
