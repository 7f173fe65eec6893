"""GET /timeline."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import header, json, not_modified, principal
from app.services import reports as report_service
from app.services import timeline as timeline_service


async def get_timeline(token_info: dict[str, Any], bucket: str = "hour",
                       group_by: str = "severity", since: str | None = None,
                       until: str | None = None, severity: list[str] | None = None,
                       status: list[str] | None = None, source: list[str] | None = None,
                       subject: list[str] | None = None,
                       label: list[str] | None = None) -> ConnexionResponse:
    filters = report_service.make_filters(severity=severity, status=status, source=source,
                                          subject=subject, label=label, since=since, until=until)
    timeline = await timeline_service.get_timeline(
        db=runtime.get().db, tenant=principal(token_info).tenant, bucket=bucket,
        group_by=group_by, filters=filters, if_none_match=header("if-none-match"))
    if timeline.document is None:
        return not_modified(timeline.etag)
    return json(timeline.document, headers={"ETag": timeline.etag})
