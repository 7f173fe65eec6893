"""Liveness and readiness."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from app import runtime
from app.errors import ServiceUnavailable
from app.handlers._http import json


async def get_health() -> ConnexionResponse:
    return json({"status": "ok"})


async def get_ready() -> ConnexionResponse:
    # a dedicated probe connection: a saturated pool never makes /ready wait
    if not await runtime.get().db.probe():
        raise ServiceUnavailable("database is unreachable")
    return json({"status": "ready", "checks": {"database": "ok"}})
