"""POST /ingest/qc and /ingest/qc/batch."""

from __future__ import annotations

from typing import Any, cast

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import body, header, json, principal
from app.observability import INGESTED
from app.services.ingest import service as ingest_service
from app.services.ingest.service import Ingested
from generated.types import BatchSubmission, ReportSubmission


async def _ingest(token_info: dict[str, Any], operation: str,
                  submissions: list[dict[str, Any]], batch: bool) -> ConnexionResponse:
    rt = runtime.get()
    result = await ingest_service.ingest(
        db=rt.db, committer=rt.committer, tenant=principal(token_info).tenant,
        operation=operation, submissions=submissions, batch=batch, request_body=body(),
        idempotency_key=header("idempotency-key"), idempotency_ttl=rt.idempotency_ttl,
        in_flight_timeout=rt.in_flight_timeout)
    return stored(result)


def stored(result: Ingested) -> ConnexionResponse:
    """201 with the stored answer (also a replay's, byte for byte), its `Location` when it
    names one report, `Idempotent-Replayed` on a replay; the severities counted. POST
    /ingest/{format} answers the same way (app/handlers/imports.py)."""
    headers = {}
    if result.answer.report_id is not None:
        headers["Location"] = f"/reports/{result.answer.report_id}"
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    for severity in result.severities:
        INGESTED.labels(severity).inc()
    return json(result.answer.body, 201, headers)


async def ingest_report(token_info: dict[str, Any]) -> ConnexionResponse:
    submission = cast(ReportSubmission, body())
    return await _ingest(token_info, "ingest.ingest_report", [dict(submission)], batch=False)


async def ingest_batch(token_info: dict[str, Any]) -> ConnexionResponse:
    submitted = cast(BatchSubmission, body())
    return await _ingest(token_info, "ingest.ingest_batch",
                         [dict(r) for r in submitted["reports"]], batch=True)
