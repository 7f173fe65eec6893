"""Authentication and the role guard: key -> Principal, then the one check of x-roles.

connexion calls api_key_info for every operation whose spec declares ApiKeyAuth. The
allowed roles come from generated/operations.py (the spec's x-roles), so the server
enforces exactly what the contract says; handlers never look at roles.
"""

from __future__ import annotations

from typing import Any

from app import runtime
from app.errors import Forbidden, Unauthorized
from app.observability import request_state
from app.services import keys as key_service
from app.services.principal import Principal
from generated.operations import BY_ID


def guard(principal: Principal, operation_id: str | None, x_tenant: str | None) -> None:
    operation = BY_ID.get(operation_id or "")
    if operation is None:
        raise Forbidden("operation is not in the contract")
    if x_tenant is not None and x_tenant != principal.tenant:
        raise Forbidden("X-Tenant does not match the key's tenant")
    if principal.role not in operation.roles:
        raise Forbidden(f"role '{principal.role}' may not call {operation.id}")


async def api_key_info(apikey: str, request: Any) -> dict[str, Any]:
    rt = runtime.get()
    principal = await key_service.authenticate(pool=rt.pool, cache=rt.keys, secret=apikey)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    state = request_state(request.scope)
    state.principal = principal
    guard(principal, state.operation_id(request.scope), request.headers.get("x-tenant"))
    rt.limiter.take(principal.tenant)
    if rt.keys.should_touch(principal.key_id):
        rt.spawn(key_service.touch(pool=rt.pool, principal=principal))
    return {"sub": str(principal.key_id), "principal": principal}
