"""GET /audit."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.errors import BadRequest
from app.handlers._http import header, json, next_link, not_modified, principal
from app.services import audit


async def list_events(token_info: dict[str, Any], action: list[str] | None = None,
                      actor: str | None = None, since: str | None = None,
                      until: str | None = None, limit: int = 50,
                      cursor: str | None = None) -> ConnexionResponse:
    try:
        actor_id = UUID(actor) if actor else None
    except ValueError:
        raise BadRequest("actor must be an API key id (a UUID)") from None
    page = await audit.list_events(
        db=runtime.get().db, tenant=principal(token_info).tenant, actions=action,
        actor=actor_id, since=since, until=until, limit=limit,
        cursor=cursor, if_none_match=header("if-none-match"))
    if page.items is None:
        return not_modified(page.etag)
    headers = {"ETag": page.etag}
    if page.next_cursor:
        headers["Link"] = next_link(page.next_cursor)
    return json({"items": page.items, "next_cursor": page.next_cursor}, headers=headers)
