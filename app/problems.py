"""The one renderer: every error leaves the service as RFC 9457 problem+json.

It turns the domain's exceptions (app/errors.py) and connexion's and starlette's own HTTP
errors into a problem document. A 5xx is a bug (or an outage) and is logged.
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

from app.errors import DomainError
from generated.operations import OPERATIONS

log = logging.getLogger("qc_collector.errors")

PROBLEM_JSON = "application/problem+json"


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
