"""Authentication and the role guard: key -> Principal, then the one check of x-roles.

connexion calls api_key_info (X-Api-Key) or session_info (the console's session cookie,
the spec's CookieAuth) for every authenticated operation; both end in the same guard. The
allowed roles come from generated/operations.py (the spec's x-roles), so the server
enforces exactly what the contract says; handlers never look at roles.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from app import runtime
from app.errors import DomainError, Forbidden, Unauthorized
from app.observability import request_state
from app.services.access import keys as key_service
from app.services.access import sessions as session_service
from app.services.access.principal import Principal
from generated.operations import BY_ID

# No tenant label: a refused credential names no tenant (and an unknown one must not
# become a label).
AUTH_FAILURES = Counter("qcc_auth_failures_total",
                        "Refused credentials (unknown or revoked key or session), by kind",
                        ["kind"])
AUTH_THROTTLED = Counter("qcc_auth_throttled_total",
                         "Requests refused with 429 because their address sent too many "
                         "refused credentials", ["kind"])

# The console's CSRF rule: a cookie request that changes state carries this header.
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "qc-console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address(request: Any) -> str:
    """The peer's address, or a trusted proxy's X-Forwarded-For (uvicorn applies it only
    for FORWARDED_ALLOW_IPS)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


async def count_refused(request: Any, kind: str) -> None:
    """Counts a refused credential against the client's address; raises TooManyAttempts
    (429) past AUTH_FAILURES_PER_MINUTE. Also for GET /bff/session's key check, which
    answers instead of refusing (it must not become an unthrottled guessing oracle)."""
    rt = runtime.get()
    AUTH_FAILURES.labels(kind).inc()
    try:
        await rt.credential_throttle.count(db=rt.db, address=client_address(request))
    except DomainError as exc:
        if exc.status == 429:
            AUTH_THROTTLED.labels(kind).inc()
        raise


async def _refused(request: Any, kind: str, refusal: DomainError) -> DomainError:
    """The refusal to raise: TooManyAttempts past the limit, else `refusal` itself."""
    try:
        await count_refused(request, kind)
    except DomainError as exc:
        return exc
    return refusal


def check_throttle(request: Any, kind: str) -> None:
    """TooManyAttempts (429) while the client's address is over the limit."""
    try:
        runtime.get().credential_throttle.check(client_address(request))
    except DomainError:
        AUTH_THROTTLED.labels(kind).inc()
        raise


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
    state = request_state(request.scope)
    try:
        check_throttle(request, "api_key")
    except DomainError as exc:
        state.key_refusal = exc
        raise
    principal = await key_service.authenticate(db=rt.db, cache=rt.keys, secret=apikey)
    if principal is None:
        # Kept: a refused X-Api-Key must not fall back to a session cookie (session_info).
        state.key_refusal = await _refused(request, "api_key",
                                           Unauthorized("unknown or revoked API key"))
        raise state.key_refusal
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
    state = request_state(request.scope)
    if request.headers.get("x-api-key") is not None:
        # The request named a key and it was refused: the cookie does not stand in for it.
        raise state.key_refusal or Unauthorized("unknown or revoked API key")
    check_throttle(request, "session")
    found = await session_service.resolve(db=rt.db, idle_seconds=rt.settings.console_session_idle,
                                          secret=apikey)
    if found is None:
        raise await _refused(request, "session", Unauthorized(
            "the console session has ended or expired; log in again"))
    principal, expires_at = found
    state.principal = principal
    if (request.scope.get("method") not in SAFE_METHODS
            and request.headers.get(CSRF_HEADER) != CSRF_VALUE):
        raise Forbidden("a console request that changes state must carry "
                        "X-Requested-With: qc-console")
    guard(principal, state.operation_id(request.scope), request.headers.get("x-tenant"))
    rt.limiter.take(principal.tenant)
    return {"sub": str(principal.key_id), "principal": principal, "session": apikey,
            "session_expires_at": expires_at}
