"""The response shaper shared by handlers: JSON bytes through orjson, ETag and 304, the
next-page Link."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

import orjson
from connexion.lifecycle import ConnexionResponse

from app import observability
from app.errors import NotFound
from app.services.access.principal import Principal

JSON = "application/json"


def principal(token_info: dict[str, Any]) -> Principal:
    return token_info["principal"]


def body() -> Any:
    """The request body, parsed once by the validation layer."""
    return observability.request_state(observability.current_scope()).body


def path_id(raw: str, missing: str) -> UUID:
    """A path id: not a UUID names nothing that exists, so it is the same 404 as an
    unknown or another tenant's id (`missing`)."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(missing) from None


def header(name: str) -> str | None:
    """A header of the request being answered."""
    return observability.header(observability.current_scope(), name)


def json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> ConnexionResponse:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return ConnexionResponse(status_code=status, body=data, content_type=JSON,
                             headers=headers or {})


def next_link(cursor: str) -> str:
    """The `Link` of a keyset page: this request's URL with its `cursor` replaced (every
    paged list builds it here)."""
    # Straight from the ASGI scope, as starlette's query_params and url.path read it, without
    # building a URL object (that was ~10 % of a list request's CPU, measured).
    scope = observability.current_scope()
    query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"),
                                          keep_blank_values=True) if k != "cursor"]
    query.append(("cursor", cursor))
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return f'<{path}?{urlencode(query)}>; rel="next"'


def not_modified(etag: str) -> ConnexionResponse:
    return ConnexionResponse(status_code=304, headers={"ETag": etag})
