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
    db = runtime.get().db
    if not await db.probe():
        raise ServiceUnavailable("database is unreachable")
    checks = {"database": "ok"}
    replica = db.replica_status()
    if replica is not None:  # a replica down or behind is no reason to stop serving
        checks["replica"] = "ok" if replica.reads_enabled else \
            f"reads on the primary: {replica.reason}"[:100]
    return json({"status": "ready", "checks": checks})
