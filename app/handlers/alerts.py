"""/alert-rules (list, create, delete) and GET /notifications (the delivery log)."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.errors import BadRequest, NotFound
from app.handlers._http import body, header, json, next_link, not_modified, principal
from app.services.alerts import rules as alert_rules
from generated.types import AlertRuleRequest


async def list_rules(token_info: dict[str, Any]) -> ConnexionResponse:
    view = await alert_rules.list_rules(db=runtime.get().db, tenant=principal(token_info).tenant,
                                        if_none_match=header("if-none-match"))
    if view.items is None:
        return not_modified(view.etag)
    return json({"items": view.items}, headers={"ETag": view.etag})


async def create_rule(token_info: dict[str, Any]) -> ConnexionResponse:
    rt = runtime.get()
    rule = await alert_rules.create_rule(db=rt.db, settings=rt.settings,
                                         principal=principal(token_info),
                                         request=cast(AlertRuleRequest, body()))
    return json(rule, 201)


async def delete_rule(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    try:
        rule_id = UUID(id)
    except ValueError:
        raise NotFound("no alert rule with this id in the tenant") from None
    await alert_rules.delete_rule(db=runtime.get().db, principal=principal(token_info),
                                  rule_id=rule_id)
    return ConnexionResponse(status_code=204)


async def list_notifications(token_info: dict[str, Any], status: str | None = None,
                             rule_id: str | None = None, limit: int = 50,
                             cursor: str | None = None) -> ConnexionResponse:
    try:
        rule = UUID(rule_id) if rule_id else None
    except ValueError:
        raise BadRequest("rule_id must be a rule id (a UUID)") from None
    page = await alert_rules.list_notifications(
        db=runtime.get().db, tenant=principal(token_info).tenant, status=status,
        rule_id=rule, limit=limit, cursor=cursor, if_none_match=header("if-none-match"))
    if page.items is None:
        return not_modified(page.etag)
    headers = {"ETag": page.etag}
    if page.next_cursor:
        headers["Link"] = next_link(page.next_cursor)
    return json({"items": page.items, "next_cursor": page.next_cursor}, headers=headers)
