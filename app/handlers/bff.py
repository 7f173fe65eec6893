"""POST /bff/login, POST /bff/logout, GET /bff/session: the console's session cookie."""

from __future__ import annotations

from typing import Any, cast

from connexion import request
from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.handlers._http import body, header, json, principal
from app.services import sessions as session_service
from generated.types import LoginRequest


async def create_session() -> ConnexionResponse:
    rt = runtime.get()
    client = request.scope.get("client")
    address = client[0] if client else "unknown"
    secret, who, expires = await session_service.login(
        db=rt.db, cache=rt.keys, settings=rt.settings,
        api_key=cast(LoginRequest, body())["api_key"],
        address=address)
    return json(session_service.describe(who, cookie=True, expires_at=expires),
                headers={"Set-Cookie": session_service.cookie_header(secret, rt.settings),
                         "Cache-Control": "no-store"})


async def delete_session(token_info: dict[str, Any]) -> ConnexionResponse:
    rt = runtime.get()
    secret = token_info.get("session")
    if secret:
        await session_service.logout(db=rt.db, principal=principal(token_info), secret=secret)
    clear = session_service.cookie_header("", rt.settings, max_age=0)
    return ConnexionResponse(status_code=204, headers={"Set-Cookie": clear})


async def get_session() -> ConnexionResponse:
    rt = runtime.get()
    who = await session_service.current(
        db=rt.db, cache=rt.keys, settings=rt.settings,
        cookie=request.cookies.get(session_service.COOKIE), api_key=header("x-api-key"))
    return json(who, headers={"Cache-Control": "no-store"})
