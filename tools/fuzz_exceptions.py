"""The fuzz gate's only exceptions to "what the schema accepts, the server accepts".

schemathesis runs with every check, positive_data_acceptance included. A schema-valid
request may still be refused for a rule JSON Schema (OpenAPI 3.0) cannot state: one
across fields, one about stored state, or one set by configuration. Each is listed here
with its reason, documented in its operation's description, and excused only when the
refusal is that rule (operation, status and the problem's detail all match); any other
refusal of schema-valid data fails the gate. Loaded by tools/fuzz.py as schemathesis hooks
(SCHEMATHESIS_HOOKS=tools.fuzz_exceptions); each excused failure is counted in
$FUZZ_EXCEPTIONS_LOG, which tools/fuzz.py prints.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import schemathesis


@dataclass(frozen=True)
class Excused:
    operations: tuple[str, ...]
    status: int
    detail: str  # a regular expression the problem's `detail` must match
    reason: str


EXCEPTIONS = (
    Excused(("GET /reports", "GET /timeline", "GET /audit", "GET /dashboard/count",
             "GET /dashboard/top", "GET /dashboard/pass-rates"), 400,
            r"^since (is after|must be before) until",
            "cross-field: `since` must be before `until`"),
    Excused(("GET /dashboard/top", "GET /dashboard/pass-rates"), 400,
            r"^the period is longer than \d+ days",
            "cross-field: at most 92 days between `since` and `until` (default now)"),
    Excused(("POST /exports",), 422, r"^since must be before until",
            "cross-field: `since` must be before `until` (which defaults to now)"),
    Excused(("GET /timeline",), 400, r"^\d+ (hour|day) buckets requested; at most 1000$",
            "cross-field: at most 1000 buckets between `since` and `until` (default now)"),
    Excused(("POST /exports",), 422, r"^the period is longer than \d+ days",
            "cross-field and configuration: `until` - `since` <= EXPORT_MAX_DAYS"),
    Excused(("GET /reports",), 400, r"^cursor belongs to another sort order",
            "cross-field: a cursor belongs to the `sort` it was made with"),
    Excused(("POST /ingest/qc", "POST /ingest/qc/batch", "POST /ingest/{format}"), 422,
            r"Idempotency-Key",
            "state: an Idempotency-Key reused with another body"),
    Excused(("POST /ingest/{format}",), 422, r"^not a valid .+ file",
            "content: a string/binary body cannot say which bytes are a JUnit, SARIF, dbt or "
            "Great Expectations file (or the one the path's format names)"),
    Excused(("POST /ingest/qc", "POST /ingest/qc/batch", "POST /exports", "POST /alert-rules"), 422,
            r"label keys must be 1-64 characters without NUL",
            "OpenAPI 3.0 has no propertyNames: label keys are 1-64 characters, no NUL"),
    Excused(("POST /alert-rules",), 422,
            r"^(the URL must use https|the host \S+ is a local or metadata name|"
            r"the address \S+ is not a public address)",
            "configuration: https and public addresses only (SSRF guard), unless "
            "ALERTS_ALLOW_PRIVATE_TARGETS"),
    Excused(("POST /alert-rules",), 422, r"^a tenant may have at most \d+ active alert rules",
            "state: at most 100 active rules per tenant"),
)


def _detail(response: Any) -> str:
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return ""
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    errors = body.get("errors") if isinstance(body, dict) else None
    # a batch names each bad item in `errors`; the rule is in their details
    if isinstance(errors, list):
        detail += "\n" + "\n".join(str(e.get("detail", "")) for e in errors if isinstance(e, dict))
    return detail


def excused(operation: str, status: int, detail: str) -> Excused | None:
    for rule in EXCEPTIONS:
        if operation in rule.operations and status == rule.status and \
                re.search(rule.detail, detail, re.MULTILINE):
            return rule
    return None


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a positive-data refusal that is one of the listed rules."""
    if "positive_data_acceptance" not in getattr(failure, "checks", ()):
        return True
    rule = excused(f"{case.operation.method.upper()} {case.operation.path}",
                   response.status_code, _detail(response))
    if rule is None:
        return True
    log = os.environ.get("FUZZ_EXCEPTIONS_LOG")
    if log:
        with open(log, "a") as out:
            out.write(rule.reason + "\n")
    return False
