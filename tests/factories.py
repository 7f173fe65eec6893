"""What the tests send and store: report submissions, API-key headers and requests, alert
rules. One builder per kind, so a change to the contract changes one place here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.services.ingest import service as ingest
from app.services.ingest.submissions import PreparedReport, prepare_all
from app.storage.db import Database
from tools.liveserver import key_for

# -- API keys ----------------------------------------------------------------------------


def headers(tenant: str = "acme", role: str = "admin", **extra: str) -> dict[str, str]:
    """Headers that authenticate as the seeded key of `tenant` with `role` (tools/liveserver)."""
    return {"X-Api-Key": key_for(tenant, role), **extra}


def new_key(name: str, role: str = "viewer") -> dict[str, str]:
    """A POST /admin/keys body."""
    return {"name": name, "role": role}


# -- reports -----------------------------------------------------------------------------


def report(**overrides: Any) -> dict[str, Any]:
    """A valid submission; each call gets a unique subject so tests do not see each other."""
    body: dict[str, Any] = {
        "source": "etl-nightly",
        "subject": f"dataset:{uuid.uuid4().hex[:12]}",
        "run_id": "2026-11-21T02:00Z#481",
        "observed_at": "2026-11-21T02:03:11Z",
        "labels": {"env": "prod", "team": "billing"},
        "checks": [
            {"rule": "row_count_min", "status": "fail", "severity": "block",
             "message": "0 rows, expected >= 1000", "observed": 0, "expected": ">= 1000"},
            {"rule": "null_ratio", "status": "pass", "severity": "warn"},
        ],
    }
    body.update(overrides)
    return body


def small_report(*, status: str = "fail", severity: str = "block", **fields: Any) -> dict[str, Any]:
    """The smallest valid submission: the required fields and one check `r` with `status` and
    `severity`; `fields` set or override top-level fields."""
    body: dict[str, Any] = {"source": "s", "subject": "x", "observed_at": "2026-11-21T00:00:00Z",
                            "checks": [{"rule": "r", "status": status, "severity": severity}]}
    body.update(fields)
    return body


async def store(db: Database, tenant: str, *batches: list[dict[str, Any]], alert_window: int = 300,
                now: datetime | None = None) -> list[PreparedReport]:
    """Stores submissions the way POST /ingest/qc(/batch) does, through the group committer:
    one commit per batch (a batch of one is a single ingest). Returns what was prepared."""
    committer = ingest.committer(db=db, alert_window=alert_window)
    committer.start()
    stored: list[PreparedReport] = []
    try:
        for batch in batches:
            prepared = prepare_all(batch, tenant=tenant, batch=len(batch) > 1, now=now)
            await committer.submit(ingest.Work(tenant, prepared))
            stored += prepared
    finally:
        await committer.stop()
    return stored


# -- alert rules -------------------------------------------------------------------------


def slack(url: str) -> dict[str, Any]:
    return {"type": "slack", "url": url}


def webhook(url: str, secret: str) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": secret}


def alert_rule(name: str, *, source: str | None = None, channels: list[dict[str, Any]] | None = None,
               **fields: Any) -> dict[str, Any]:
    """A POST /alert-rules body: reports from `source` (by default a source nothing sends,
    so the rule never fires) go to `channels` (by default one Slack webhook that is never
    called); `fields` set or override top-level fields (match, fallback)."""
    body: dict[str, Any] = {
        "name": name, "match": {"source": [source or "never-matches"]},
        "channels": channels or [slack("https://hooks.example.com/services/never-called")]}
    body.update(fields)
    return body
