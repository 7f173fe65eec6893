"""Dashboard aggregates: top failing sources/subjects, pass rates, the capped match count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.storage.db import Read
from app.storage.queries import composed, q
from app.storage.reports import REPORT_FILTERS, filter_sql

TOP_QUERIES = {"source": "dashboard_top_sources", "subject": "dashboard_top_subjects"}


def top_failing(*, tenant: str, by: str, since: datetime, until: datetime,
                limit: int) -> Read[list[dict[str, Any]]]:
    return Read(q(TOP_QUERIES[by]), {"tenant": tenant, "since": since, "until": until,
                                     "limit": limit}, list, dict_rows=True)


def pass_rates(*, tenant: str, since: datetime, until: datetime,
               limit: int) -> Read[list[dict[str, Any]]]:
    return Read(q("dashboard_pass_rates"), {"tenant": tenant, "since": since, "until": until,
                                            "limit": limit}, list, dict_rows=True)


def count_capped(*, tenant: str, params: dict[str, Any], cap: int) -> Read[int]:
    statement = composed("count_reports_capped",
                         filters=filter_sql(params, REPORT_FILTERS)).as_string()
    return Read(statement, {"tenant": tenant, **params, "cap_plus_one": cap + 1},
                lambda rows: int(rows[0][0]) if rows else 0)
