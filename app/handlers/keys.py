"""/admin/keys: create (secret shown once), list, revoke — in the caller's tenant."""

from __future__ import annotations

from typing import Any, cast

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import body, json, path_id, principal
from app.services.access import keys as key_service
from app.services.canonical import rfc3339
from generated.types import ApiKeyRequest


def _shape(record: dict[str, Any]) -> dict[str, Any]:
    stamp = lambda value: rfc3339(value) if value else None  # noqa: E731
    return {"id": str(record["id"]), "name": record["name"], "role": record["role"],
            "prefix": record["prefix"], "origin": record["origin"],
            "created_at": stamp(record["created_at"]),
            "last_used_at": stamp(record["last_used_at"]),
            "revoked_at": stamp(record["revoked_at"])}


async def create_key(token_info: dict[str, Any]) -> ConnexionResponse:
    caller, request = principal(token_info), cast(ApiKeyRequest, body())
    created = await key_service.create(db=runtime.get().db, tenant=caller.tenant,
                                       name=request["name"], role=request["role"],
                                       actor_key=caller.key_id)
    shaped = _shape(created.record)
    answer = {k: shaped[k] for k in ("id", "name", "role", "prefix", "created_at")}
    answer["secret"] = created.secret
    return json(answer, 201, {"Location": f"/admin/keys/{answer['id']}"})


async def list_keys(token_info: dict[str, Any]) -> ConnexionResponse:
    records = await key_service.list_keys(db=runtime.get().db,
                                          tenant=principal(token_info).tenant)
    return json({"items": [_shape(r) for r in records]})


async def rotate_key(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    caller, rt = principal(token_info), runtime.get()
    key_id = path_id(id, "no active key with this id in the tenant")
    rotated = await key_service.rotate(db=rt.db, tenant=caller.tenant, key_id=key_id,
                                       grace_seconds=rt.settings.key_rotation_grace,
                                       actor_key=caller.key_id)
    shaped = _shape(rotated.record)
    answer = {k: shaped[k] for k in ("id", "name", "role", "prefix")}
    answer.update(secret=rotated.secret, rotated_at=rfc3339(rotated.record["rotated_at"]),
                  previous_valid_until=rfc3339(rotated.record["previous_valid_until"]))
    return json(answer)


async def revoke_key(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    caller = principal(token_info)
    key_id = path_id(id, "no active key with this id in the tenant")
    await key_service.revoke(db=runtime.get().db, tenant=caller.tenant, key_id=key_id,
                             actor_key=caller.key_id)
    return ConnexionResponse(status_code=204)
