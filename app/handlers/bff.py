"""POST /bff/login, POST /bff/logout, GET /bff/session: the console's session cookie."""

from __future__ import annotations

from typing import Any, cast

from connexion import request
from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.config import Settings
from app.handlers._http import body, header, json, principal
from app.security import check_throttle, client_address, count_refused
from app.services.access import sessions as session_service
from generated.types import LoginRequest

COOKIE = "__Host-qcc_session"  # the prefix: Secure, Path=/, no Domain (no subdomain sets it)
INSECURE_COOKIE = "qcc_session"  # plain-http development only (renamed in app/guard.py)


def cookie_header(secret: str, settings: Settings, *, max_age: int | None = None) -> str:
    age = settings.console_session_ttl if max_age is None else max_age
    name = INSECURE_COOKIE if settings.console_insecure_cookies else COOKIE
    parts = [f"{name}={secret}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={age}"]
    if not settings.console_insecure_cookies:
        parts.append("Secure")
    return "; ".join(parts)


async def create_session() -> ConnexionResponse:
    rt = runtime.get()
    address = client_address(request)
    secret, who, expires = await session_service.login(
        db=rt.db, cache=rt.keys, throttle=rt.login_throttle,
        ttl_seconds=rt.settings.console_session_ttl,
        api_key=cast(LoginRequest, body())["api_key"],
        address=address)
    return json(session_service.describe(who, cookie=True, expires_at=expires),
                headers={"Set-Cookie": cookie_header(secret, rt.settings),
                         "Cache-Control": "no-store"})


async def delete_session(token_info: dict[str, Any]) -> ConnexionResponse:
    rt = runtime.get()
    secret = token_info.get("session")
    if secret:
        await session_service.logout(db=rt.db, principal=principal(token_info), secret=secret)
    clear = cookie_header("", rt.settings, max_age=0)
    return ConnexionResponse(status_code=204, headers={"Set-Cookie": clear,
                                                       "Cache-Control": "no-store"})


async def get_session() -> ConnexionResponse:
    rt = runtime.get()
    api_key = header("x-api-key")
    if api_key:
        check_throttle(request, "session_check")
    who = await session_service.current(
        db=rt.db, cache=rt.keys, idle_seconds=rt.settings.console_session_idle,
        cookie=request.cookies.get(COOKIE), api_key=api_key)
    if api_key and not who["authenticated"]:
        await count_refused(request, "session_check")
    return json(who, headers={"Cache-Control": "no-store"})
