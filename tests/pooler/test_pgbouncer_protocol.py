"""What transaction pooling allows, measured on the installed PgBouncer: transaction-local
settings (RLS's app.tenant) are safe; session state is not; psycopg's server-side prepared
statements need PgBouncer >= 1.21 with max_prepared_statements, so DB_PREPARE_THRESHOLD=off
switches them off otherwise."""

from __future__ import annotations

import psycopg
import pytest

from tests.pooler import pgbouncer
from tools.liveserver import free_port


def test_transaction_local_settings_end_with_the_transaction(bouncer, database):
    url = bouncer.url(database.app_url)
    with psycopg.connect(url, autocommit=True) as first, \
            psycopg.connect(url, autocommit=True) as second:
        first_pid = first.execute("SELECT pg_backend_pid()").fetchone()
        second_pid = second.execute("SELECT pg_backend_pid()").fetchone()
        assert first_pid == second_pid  # one server connection shared by both clients
        with first.transaction():
            first.execute("SELECT set_config('app.tenant', 'acme', true)")
            assert first.execute("SELECT current_setting('app.tenant')").fetchone() == ("acme",)
        assert second.execute("SELECT current_setting('app.tenant', true)").fetchone() in [
            (None,), ("",)]
        # a session-level SET would leak into whichever client runs next: never used
        first.execute("SELECT set_config('app.tenant', 'leaked', false)")
        assert second.execute("SELECT current_setting('app.tenant', true)").fetchone() == (
            "leaked",)
        second.execute("RESET app.tenant")
        # the pooler sets the time zone the service's startup options would have set
        assert first.execute("SHOW TimeZone").fetchone() == ("UTC",)


def _alternate(url: str, threshold: int | None) -> None:
    with psycopg.connect(url, autocommit=True, prepare_threshold=threshold) as first, \
            psycopg.connect(url, autocommit=True, prepare_threshold=threshold) as second:
        for n in range(4):
            for conn in (first, second):
                conn.execute("SELECT %s::int + 1", (n,))


def test_prepared_statements_need_pgbouncer_1_21_else_they_are_switched_off(bouncer, database):
    url = bouncer.url(database.app_url)
    _alternate(url, None)  # DB_PREPARE_THRESHOLD=off: always works
    if pgbouncer.version() < (1, 21):
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            _alternate(url, 0)  # both clients prepare _pg3_0 on the one server connection
        return
    # PgBouncer >= 1.21 tracks protocol-level prepared statements itself
    tracking = pgbouncer.start(database.app_url, port=free_port(), pool_size=1,
                               max_prepared_statements=100)
    try:
        _alternate(tracking.url(database.app_url), 0)
    finally:
        tracking.stop()


async def test_versioned_reads_behind_transaction_pooling_are_served(database):
    """Database.read_versioned PREPAREs its reads per session (SQL-level, which PgBouncer
    does not track): behind transaction pooling with two server connections the session
    changes between transactions. Every read is still answered with its own tenant's rows,
    and after a few out-of-step sessions the reads stop preparing."""
    import asyncio

    from app.storage.db import Database, Read

    bouncer = pgbouncer.start(database.app_url, port=free_port(), pool_size=2)
    db = await Database(bouncer.url(database.app_url), min_size=4, max_size=4,
                        prepare_threshold=5).open(wait=30)
    read = Read("SELECT current_setting('app.tenant'), %(n)s::int", {"n": 7},
                lambda rows: rows[0])
    try:
        async def reader(tenant: str) -> None:
            for _ in range(40):
                assert (await db.read_versioned(tenant, read))[1] == (tenant, 7)

        await asyncio.gather(*(reader(f"tenant-{i}") for i in range(4)))
    finally:
        await db.close()
        bouncer.stop()
