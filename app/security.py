"""Authentication and the role guard: key -> Principal, then the one check of x-roles.

connexion calls api_key_info (X-Api-Key) or session_info (the console's session cookie,
the spec's CookieAuth) for every authenticated operation; both end in the same guard. The
allowed roles come from generated/operations.py (the spec's x-roles), so the server
enforces exactly what the contract says; handlers never look at roles.
"""

from __future__ import annotations

from typing import Any

from app import runtime
from app.errors import Forbidden, Unauthorized
from app.observability import request_state
from app.services import keys as key_service
from app.services import sessions as session_service
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
    principal = await key_service.authenticate(db=rt.db, cache=rt.keys, secret=apikey)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    state = request_state(request.scope)
    state.principal = principal
    guard(principal, state.operation_id(request.scope), request.headers.get("x-tenant"))
    rt.limiter.take(principal.tenant)
    if rt.keys.should_touch(principal.key_id):
        rt.spawn(key_service.touch(db=rt.db, principal=principal))
    return {"sub": str(principal.key_id), "principal": principal}


async def session_info(apikey: str, request: Any) -> dict[str, Any]:
    """The console's session cookie. Unsafe methods must also carry X-Requested-With:
    qc-console (CSRF protection on top of SameSite=Strict)."""
    rt = runtime.get()
    found = await session_service.resolve(db=rt.db, settings=rt.settings, secret=apikey)
    if found is None:
        raise Unauthorized("the console session has ended or expired; log in again")
    principal, expires_at = found
    state = request_state(request.scope)
    state.principal = principal
    if (request.scope.get("method") not in session_service.SAFE_METHODS
            and request.headers.get(session_service.CSRF_HEADER) != session_service.CSRF_VALUE):
        raise Forbidden("a console request that changes state must carry "
                        "X-Requested-With: qc-console")
    guard(principal, state.operation_id(request.scope), request.headers.get("x-tenant"))
    rt.limiter.take(principal.tenant)
    return {"sub": str(principal.key_id), "principal": principal, "session": apikey,
            "session_expires_at": expires_at}
