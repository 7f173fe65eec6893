"""POST /ingest/{format}: a raw result file in, its reports stored (app/services/ingest/imports.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from connexion import request
from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import header, principal
from app.handlers.ingest import stored
from app.importers import Options
from app.services.ingest import imports as import_service


class _RawBodyNotices(logging.Filter):
    """connexion logs, on every request to an operation with several content types (this
    one: the file's own), that it picked one, and that it does not validate XML or bytes.
    Both are by design here; the importer parses and checks the file."""

    QUIET = ("this operation accepts multiple content types",
             "Skipping validation. No validator registered for content type")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.QUIET)


logging.getLogger("connexion.operations.openapi3").addFilter(_RawBodyNotices())
logging.getLogger("connexion.middleware.validation").addFilter(_RawBodyNotices())


async def import_file(token_info: dict[str, Any], format: str, source: str,
                      subject: str | None = None, run_id: str | None = None,
                      label: list[str] | None = None) -> ConnexionResponse:
    rt = runtime.get()
    labels = dict(item.split(":", 1) for item in label or [])
    options = Options(source=source, subject=subject, run_id=run_id, labels=labels,
                      observed_at=datetime.now(UTC))
    result = await import_service.import_file(
        db=rt.db, committer=rt.committer, tenant=principal(token_info).tenant, fmt=format,
        raw=await request.body(), options=options, idempotency_key=header("idempotency-key"),
        idempotency_ttl=rt.idempotency_ttl, in_flight_timeout=rt.in_flight_timeout)
    return stored(result)
