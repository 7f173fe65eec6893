"""Liveness and readiness."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.errors import ServiceUnavailable
from app.handlers._http import json
from app.storage.db import ping


async def get_health() -> ConnexionResponse:
    return json({"status": "ok"})


async def get_ready() -> ConnexionResponse:
    if not await ping(runtime.get().pool):
        raise ServiceUnavailable("database is unreachable")
    return json({"status": "ready", "checks": {"database": "ok"}})
