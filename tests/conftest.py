"""Shared fixtures: one real PostgreSQL and one real gunicorn server per test session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

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


def pytest_configure(config: pytest.Config) -> None:
    """A temp root of this session's own. pytest makes /tmp/pytest-of-<user> private
    (chmod 0700) whenever a session starts, which locks the embedded PostgreSQL's OS user
    (pgserver, when run as root) out of the data dirs of any other session running at
    the same time — a nested pytest in a test, or a second suite on the machine."""
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="qcc-pytest-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


_OWN_BASETEMP = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDatabase]:
    db = start_database(tmp_path_factory.mktemp("pg"))
    yield db
    db.stop()


@pytest.fixture(scope="session")
def server(database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(database, run_dir=tmp_path_factory.mktemp("server"),
                        env={"VALIDATE_RESPONSES": "true"})
    yield live
    live.stop()


@pytest.fixture(scope="session")
def worker(database: LiveDatabase, server: LiveServer) -> Iterator[LiveWorker]:
    """A job worker sharing the server's data dir (export files), with a fast heartbeat.
    It delivers no alerts (ALERT_DISPATCH=false: it does not listen on the alerts queue):
    tests/api/test_alerts.py runs delivering workers of its own, with settings that reach
    its local receivers, on the same database."""
    live = start_worker(database, run_dir=server.log_path.parent,
                        env={"WORKER_HEARTBEAT_SECONDS": "1", "ALERT_DISPATCH": "false"})
    yield live
    live.stop()


@pytest.fixture(scope="session")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
