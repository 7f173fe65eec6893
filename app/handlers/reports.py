"""GET /reports and /reports/{id}."""

from __future__ import annotations

from typing import Any

import orjson
from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import header, json, next_link, not_modified, path_id, principal
from app.services import reports as report_service


async def list_reports(token_info: dict[str, Any], sort: str = "-received_at", limit: int = 50,
                       cursor: str | None = None, severity: list[str] | None = None,
                       status: list[str] | None = None, source: list[str] | None = None,
                       subject: list[str] | None = None, label: list[str] | None = None,
                       since: str | None = None, until: str | None = None) -> ConnexionResponse:
    filters = report_service.make_filters(severity=severity, status=status, source=source,
                                          subject=subject, label=label, since=since, until=until)
    page = await report_service.list_reports(
        db=runtime.get().db, tenant=principal(token_info).tenant, filters=filters,
        sort=sort, limit=limit, cursor=cursor, if_none_match=header("if-none-match"))
    if page.items is None:
        return not_modified(page.etag)
    headers = {"ETag": page.etag}
    if page.next_cursor:
        headers["Link"] = next_link(page.next_cursor)
    # the items arrive as JSON text from PostgreSQL: spliced, not parsed and re-encoded
    body = b'{"items":' + page.items + b',"next_cursor":' + orjson.dumps(page.next_cursor) + b"}"
    return json(body, headers=headers)


async def get_report(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    report_id = path_id(id, "report not found")
    document = await report_service.get_report(
        db=runtime.get().db, tenant=principal(token_info).tenant, report_id=report_id,
        if_none_match=header("if-none-match"))
    if document.body is None:
        return not_modified(document.etag)
    return json(document.body, headers={"ETag": document.etag})
