"""POST /reports/{id}/sign, GET /reports/{id}/bundle.zip, GET /signing-keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import header, json, not_modified, path_id, principal
from app.services.evidence import bundles, signatures


def _report_id(raw: str) -> UUID:
    return path_id(raw, "report not found")


async def sign_report(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    rt = runtime.get()
    record = await signatures.sign(db=rt.db, keys=rt.signing, principal=principal(token_info),
                                   report_id=_report_id(id))
    return json(record.body, 201 if record.created else 200)


async def get_bundle(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    report_id = _report_id(id)
    found = await bundles.bundle(db=runtime.get().db, tenant=principal(token_info).tenant,
                                 report_id=report_id, if_none_match=header("if-none-match"))
    if found.data is None:
        return not_modified(found.etag)
    return ConnexionResponse(status_code=200, body=found.data, content_type="application/zip",
                             headers={"ETag": found.etag, "Content-Disposition":
                                      f'attachment; filename="report-{report_id}.zip"'})


async def list_signing_keys() -> ConnexionResponse:
    return json(runtime.get().signing.jwks())
