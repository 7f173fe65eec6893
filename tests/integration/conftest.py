"""Integration fixtures: a Database on the real database as the app role (RLS on), and a
fresh database of a test's own (empty or migrated) in the same cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from app.storage.db import Database
from app.storage.migrate import migrate
from tools.liveserver import LiveDatabase


class CountingCursor(psycopg.AsyncCursor):  # type: ignore[type-arg]
    """Counts statements sent to PostgreSQL, to prove a request costs a constant number."""

    count = 0

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.count += 1
        return await super().execute(*args, **kwargs)


class CountingClientCursor(psycopg.AsyncClientCursor):  # type: ignore[type-arg]
    """The same for the client-side-binding cursor of Database.read_versioned: one execute,
    one round trip (however many statements its simple query holds)."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.count += 1
        return await super().execute(*args, **kwargs)


class CountingConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = CountingCursor


@pytest.fixture
async def db(database, monkeypatch) -> AsyncIterator[Database]:
    monkeypatch.setattr(psycopg, "AsyncClientCursor", CountingClientCursor)
    db = Database(database.app_url, min_size=1, max_size=4)
    db.pool.connection_class = CountingConnection
    await db.open(wait=30)
    yield db
    await db.close()


@pytest.fixture
def owner(database) -> Any:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def fresh_database(database: LiveDatabase, owner: Any) -> Iterator[LiveDatabase]:
    """An empty database of this test's own in the session's cluster (same roles), for a
    test that needs no other test's rows, jobs or workers; dropped afterwards."""
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    owner.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    urls = []
    for url in (database.owner_url, database.app_url):
        params = psycopg.conninfo.conninfo_to_dict(url)
        params["dbname"] = name
        urls.append(psycopg.conninfo.make_conninfo(**params))
    yield LiveDatabase(owner_url=urls[0], app_url=urls[1])
    owner.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def migrated_database(fresh_database: LiveDatabase) -> LiveDatabase:
    """fresh_database with every migration applied."""
    migrate(fresh_database.owner_url)
    return fresh_database


@pytest.fixture
async def migrated_db(migrated_database: LiveDatabase) -> AsyncIterator[Database]:
    """A Database on migrated_database as the app role (RLS on)."""
    db = await Database(migrated_database.app_url, min_size=1, max_size=6).open(wait=30)
    yield db
    await db.close()
