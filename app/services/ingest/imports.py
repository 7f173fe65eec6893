"""Import a result file: map it to report submissions (app/importers) and store them
through the batch ingest, so limits, idempotency, group commit and alerts are shared."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

from app import importers
from app.services.ingest import idempotency
from app.services.ingest import service as ingest_service
from app.services.ingest.group_commit import GroupCommitter
from app.storage.db import Database

OPERATION = "imports.import_file"


def request_fingerprint(fmt: str, raw: bytes, options: importers.Options) -> dict[str, Any]:
    """What makes two imports the same request: the format, the query and the file."""
    return {"format": fmt, "file_sha256": hashlib.sha256(raw).hexdigest(),
            "source": options.source, "subject": options.subject, "run_id": options.run_id,
            "labels": options.labels}


def derived_key(request: dict[str, Any]) -> str:
    """The Idempotency-Key of an import that sent none: re-sending the file is a replay."""
    return "import-" + idempotency.fingerprint(OPERATION, request)


async def import_file(*, db: Database, committer: GroupCommitter[ingest_service.Work], tenant: str,
                      fmt: str, raw: bytes, options: importers.Options, idempotency_key: str | None,
                      idempotency_ttl: timedelta,
                      in_flight_timeout: timedelta = idempotency.IN_FLIGHT_TIMEOUT,
                      ) -> ingest_service.Ingested:
    # Parsing a 10 MiB file takes a while: off the event loop.
    submissions = await asyncio.to_thread(importers.to_reports, fmt, raw, options)
    request = request_fingerprint(fmt, raw, options)
    return await ingest_service.ingest(
        db=db, committer=committer, tenant=tenant, operation=OPERATION,
        submissions=submissions, batch=True, request_body=request,
        idempotency_key=idempotency_key or derived_key(request), idempotency_ttl=idempotency_ttl,
        in_flight_timeout=in_flight_timeout)
