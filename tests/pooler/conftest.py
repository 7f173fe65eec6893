"""A PgBouncer in transaction mode in front of the session's embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pooler import pgbouncer
from tools.liveserver import LiveDatabase, free_port


@pytest.fixture(scope="module")
def bouncer(database: LiveDatabase) -> Iterator[pgbouncer.Bouncer]:
    # one server connection per (user, database): every client shares it, so a setting or
    # prepared statement that outlives its transaction would show up in the next client
    live = pgbouncer.start(database.app_url, port=free_port(), pool_size=1)
    yield live
    live.stop()
