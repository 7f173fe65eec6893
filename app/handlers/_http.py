"""The response shaper shared by handlers: JSON bytes through orjson, ETag and 304, the
next-page Link."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode
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
    # building a URL object (that was ~10 % of a list request's CPU, measured). All but the
    # cursor is the same on every page of one listing: built once per path and query.
    scope = observability.current_scope()
    query: bytes = scope["query_string"]
    if b"cursor" in query:  # the cursor's own text never keys the cache
        query = b"&".join(part for part in query.split(b"&")
                           if part != b"cursor" and not part.startswith(b"cursor="))
    return _link_before_cursor(scope["path"], query) + quote_plus(cursor) + '>; rel="next"'


@functools.lru_cache(maxsize=128)
def _link_before_cursor(path: str, query: bytes) -> str:
    """`<path?every other parameter&cursor=`, as urlencode writes them."""
    pairs = [(k, v) for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
             if k != "cursor"]
    path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return f"<{path}?{urlencode([*pairs, ('cursor', '')])}"


def not_modified(etag: str) -> ConnexionResponse:
    return ConnexionResponse(status_code=304, headers={"ETag": etag})
