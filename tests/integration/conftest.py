"""Integration fixtures: a Database on the real database as the app role (RLS on)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from app.storage.db import Database


class CountingCursor(psycopg.AsyncCursor):  # type: ignore[type-arg]
    """Counts statements sent to PostgreSQL, to prove a request costs a constant number."""

    count = 0

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.count += 1
        return await super().execute(*args, **kwargs)


class CountingConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = CountingCursor


@pytest.fixture
async def db(database) -> AsyncIterator[Database]:
    db = Database(database.app_url, min_size=1, max_size=4)
    db.pool.connection_class = CountingConnection
    await db.open(wait=30)
    yield db
    await db.close()


@pytest.fixture
def owner(database) -> Any:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        yield conn
