"""POST /admin/retention/run: a dry run by default; a commit by plan_hash."""

from __future__ import annotations

from typing import Any, cast

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import body, json, principal
from app.services import retention
from generated.types import RetentionRequest


async def run_retention(token_info: dict[str, Any]) -> ConnexionResponse:
    rt, caller, request = runtime.get(), principal(token_info), cast(RetentionRequest, body())
    if request.get("dry_run", True):
        outcome = await retention.dry_run(
            db=rt.db, settings=rt.settings, tenant=caller.tenant,
            older_than_days=request.get("older_than_days"),
            include_signed=request.get("include_signed", False), actor_key=caller.key_id)
    else:
        outcome = await retention.commit(db=rt.db, settings=rt.settings, tenant=caller.tenant,
                                         plan_hash=request.get("plan_hash"),
                                         actor_key=caller.key_id)
    return json(outcome.as_dict())
