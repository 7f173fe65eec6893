"""Fault drills: one PostgreSQL cluster of their own (they stop it, fill its connection
slots and kill its clients), one API server on it, workers started per drill. Each drill
records its figures; they are printed at the end of the run."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.liveserver import (
    LiveDatabase,
    LiveServer,
    LiveWorker,
    start_database,
    start_server,
    start_worker,
)

FIGURES: list[tuple[str, dict[str, Any]]] = []

ENV = {
    "WEB_CONCURRENCY": "2",
    "DB_POOL_TIMEOUT": "2",  # a request waits at most this long for a connection
    "IDEMPOTENCY_IN_FLIGHT_SECONDS": "5",  # a killed worker's keys are freed after 5 s
    "ENCRYPTION_KEY": base64.b64encode(b"d" * 32).decode(),
    "ALERTS_ALLOW_PRIVATE_TARGETS": "true",
    "ALERT_POLL_SECONDS": "0.2",
    "ALERT_SEND_TIMEOUT": "0.5",
    "ALERT_DEDUP_WINDOW": "60",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "SYSTEM_ALERT_INTERVAL": "3600",
}


def record(drill: str, **figures: Any) -> None:
    FIGURES.append((drill, figures))
    print(f"\nDRILL {drill}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault drills")
    for drill, figures in FIGURES:
        terminalreporter.write_line(
            f"{drill:<28} " + "  ".join(f"{k}={v}" for k, v in figures.items()))


@dataclass
class Site:
    database: LiveDatabase
    server: LiveServer
    run_dir: Path
    http: httpx.Client

    def worker(self, name: str, **kwargs: Any) -> LiveWorker:
        env = {**ENV, **kwargs.pop("env", {})}
        return start_worker(self.database, run_dir=self.run_dir, env=env, name=name, **kwargs)


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    database = start_database(tmp_path_factory.mktemp("drill-pg"))
    run_dir = tmp_path_factory.mktemp("drill-srv")
    try:
        server = start_server(database, workers=2, env=ENV, run_dir=run_dir)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield Site(database, server, run_dir, client)
        finally:
            server.stop()
    finally:
        try:
            database.postgres_start()  # a failed drill may have left it stopped
        except Exception:  # already running, or gone: stop() below decides
            pass
        database.stop()
