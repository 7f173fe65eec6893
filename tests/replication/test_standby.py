"""The fixture itself: the standby streams from the primary and refuses writes."""

from __future__ import annotations

import psycopg
import pytest


def test_standby_streams_and_is_read_only(database, standby):
    with psycopg.connect(database.owner_url, autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS replication_probe (n int)")
        primary.execute("INSERT INTO replication_probe VALUES (42)")
    standby.wait_caught_up()
    with psycopg.connect(standby.owner_url, autocommit=True) as replica:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert replica.execute("SELECT n FROM replication_probe").fetchall() == [(42,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute("INSERT INTO replication_probe VALUES (1)")
    with psycopg.connect(database.owner_url, autocommit=True) as primary:
        senders = primary.execute("SELECT count(*) FROM pg_stat_replication"
                                  " WHERE state = 'streaming'").fetchone()
        primary.execute("DROP TABLE replication_probe")
    assert senders == (1,)
