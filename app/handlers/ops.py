"""GET /ops/metrics."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import header, json, not_modified, principal
from app.services.ops import metrics as ops_service


async def get_metrics(token_info: dict[str, Any]) -> ConnexionResponse:
    metrics = await ops_service.get_metrics(db=runtime.get().db,
                                            tenant=principal(token_info).tenant,
                                            if_none_match=header("if-none-match"))
    if metrics.document is None:
        return not_modified(metrics.etag)
    return json(metrics.document, headers={"ETag": metrics.etag})
