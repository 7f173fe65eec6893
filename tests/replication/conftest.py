"""The session's embedded PostgreSQL as primary, with a real streaming standby per module
(the drills stop and promote it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.replication.standby import Standby, make_standby
from tools.liveserver import LiveDatabase, free_port


@pytest.fixture(scope="module")
def standby(database: LiveDatabase) -> Iterator[Standby]:
    replica = make_standby(database.owner_url, port=free_port())
    yield replica
    replica.destroy()
