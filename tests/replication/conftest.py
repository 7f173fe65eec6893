"""One primary (the session's embedded PostgreSQL) with a real streaming standby."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.replication.standby import Standby, make_standby
from tools.liveserver import LiveDatabase, free_port


@pytest.fixture(scope="session")
def standby(database: LiveDatabase) -> Iterator[Standby]:
    replica = make_standby(database.owner_url, port=free_port())
    yield replica
    replica.destroy()
