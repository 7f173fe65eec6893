"""GET /dashboard/top, /dashboard/pass-rates, /dashboard/count."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import header, json, not_modified, principal
from app.services import dashboard
from app.services import reports as report_service
from app.services.dashboard import Answer


def _answer(answer: Answer) -> ConnexionResponse:
    if answer.body is None:
        return not_modified(answer.etag)
    return json(answer.body, headers={"ETag": answer.etag})


async def list_top(token_info: dict[str, Any], by: str = "source", since: str | None = None,
                   until: str | None = None, limit: int = 10) -> ConnexionResponse:
    window = report_service.make_filters(since=since, until=until)
    return _answer(await dashboard.top_failing(
        db=runtime.get().db, tenant=principal(token_info).tenant, by=by,
        since=window.since, until=window.until, limit=limit,
        if_none_match=header("if-none-match")))


async def list_pass_rates(token_info: dict[str, Any], since: str | None = None,
                          until: str | None = None, limit: int = 10) -> ConnexionResponse:
    window = report_service.make_filters(since=since, until=until)
    return _answer(await dashboard.pass_rates(
        db=runtime.get().db, tenant=principal(token_info).tenant, since=window.since,
        until=window.until, limit=limit, if_none_match=header("if-none-match")))


async def count_reports(token_info: dict[str, Any], severity: list[str] | None = None,
                        status: list[str] | None = None, source: list[str] | None = None,
                        subject: list[str] | None = None, label: list[str] | None = None,
                        since: str | None = None, until: str | None = None) -> ConnexionResponse:
    filters = report_service.make_filters(severity=severity, status=status, source=source,
                                          subject=subject, label=label, since=since, until=until)
    return _answer(await dashboard.count_reports(
        db=runtime.get().db, tenant=principal(token_info).tenant, filters=filters,
        if_none_match=header("if-none-match")))
