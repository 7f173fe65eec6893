"""The Database boundary on a real PostgreSQL: a saturated pool is a 503 (never a hang) and
never delays the readiness probe; a lost connection is a 503 and the next unit works; a
named constraint becomes its domain error."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any

import orjson
import psycopg
import pytest

from app.errors import Conflict, ServiceUnavailable
from app.storage import keys as key_store
from app.storage.db import Database, prepared_form

TENANT = "db-boundary"


async def test_a_saturated_pool_is_a_quick_503_and_the_probe_still_answers(database):
    db = await Database(database.app_url, min_size=1, max_size=1, timeout=0.5).open(wait=30)
    try:
        async with db.system() as held:  # the pool's only connection, busy
            await held.execute("SELECT 1")
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable) as refused:
                async with db.tenant(TENANT):
                    pass
            assert time.monotonic() - started < 2.0
            assert refused.value.headers["Retry-After"]
            started = time.monotonic()
            assert await db.probe() is True
            assert time.monotonic() - started < 1.0
        async with db.tenant(TENANT) as conn:  # free again: served
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await db.close()


async def test_a_lost_connection_is_a_503_and_the_next_unit_gets_a_live_one(database, owner):
    db = await Database(database.app_url, min_size=1, max_size=2).open(wait=30)
    try:
        async with db.system() as conn:
            pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
        owner.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(ServiceUnavailable):
            async with db.tenant(TENANT) as conn:
                await conn.execute("SELECT 1")
        deadline = time.monotonic() + 5
        while True:
            try:
                async with db.tenant(TENANT) as conn:
                    await conn.execute("SELECT 1")
                break
            except ServiceUnavailable:
                assert time.monotonic() < deadline, "no live connection within 5 s"
                await asyncio.sleep(0.1)
    finally:
        await db.close()


async def test_a_named_constraint_becomes_its_domain_error(db):
    digest = hashlib.sha256(uuid.uuid4().bytes).digest()

    async def insert() -> None:
        async with db.tenant(TENANT) as conn:
            await key_store.create(conn, tenant=TENANT, key_id=uuid.uuid4(), name="k",
                                   role="viewer", prefix="qcc_test", secret_sha256=digest,
                                   origin="api")

    await insert()
    with pytest.raises(Conflict, match="already exists"):
        await insert()


@pytest.mark.parametrize("prepare_threshold", [5, None])
async def test_a_versioned_read_is_one_scoped_round_trip_and_survives_a_lost_prepare(
        database, prepare_threshold):
    """read_versioned sends the scope, the version and the read in one simple query (a
    PREPAREd statement per session unless DB_PREPARE_THRESHOLD=off): the read sees only
    its tenant, the scope does not outlive it on the pooled connection, and a session that
    lost its prepared statements (DEALLOCATE ALL, a server reset) or already holds them is
    served, not failed."""
    from app.storage.db import Read

    db = await Database(database.app_url, min_size=1, max_size=1,
                        prepare_threshold=prepare_threshold).open(wait=30)
    read = Read("SELECT current_setting('app.tenant'), %(greeting)s::text, 100 %% 7",
                {"greeting": "it's \\ 100% 中文"}, lambda rows: rows[0])
    nobody = f"tenant-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database.owner_url, autocommit=True) as owner:
        owner.execute("INSERT INTO tenant_versions (tenant_id, version) VALUES ('tenant-a', 41),"
                      " ('tenant-b', 7) ON CONFLICT (tenant_id) DO UPDATE SET version ="
                      " EXCLUDED.version")
    try:
        for tenant, expected in (("tenant-a", 41), ("tenant-b", 7), ("tenant-a", 41),
                                 (nobody, 0)):
            # the version read under the tenant's own row-level security: its own row
            version, row = await db.read_versioned(tenant, read)
            assert row == (tenant, "it's \\ 100% 中文", 2) and version == expected
        async with db.system() as conn:  # the pool's one connection: the scope is gone
            setting = await (await conn.execute(
                "SELECT coalesce(current_setting('app.tenant', true), '')")).fetchone()
            assert setting == ("",)
            await conn.execute("DEALLOCATE ALL")  # the session forgets what we prepared
        assert (await db.read_versioned("tenant-b", read))[1][0] == "tenant-b"
        db._prepared.clear()  # we forget what the session holds
        assert (await db.read_versioned("tenant-a", read))[1][0] == "tenant-a"
        # a read that fails after its PREPARE ran leaves the session holding it: no confusion
        failing = Read("SELECT 10 / %(d)s::int", {"d": 0}, lambda rows: rows[0][0])
        with pytest.raises(Exception, match="division by zero"):
            await db.read_versioned("tenant-a", failing)
        steps = db._out_of_step
        assert (await db.read_versioned("tenant-a", Read(failing.statement, {"d": 5},
                                                         failing.result)))[1] == 2
        assert db._out_of_step == steps
        # a session that keeps changing under the connection (a pooler): reads stop preparing
        for _ in range(3):
            async with db.system() as conn:
                await conn.execute("DEALLOCATE ALL")
            assert (await db.read_versioned("tenant-b", read))[1][0] == "tenant-b"
        assert db.prepares is False
        assert (await db.read_versioned("tenant-a", read))[1][0] == "tenant-a"
    finally:
        await db.close()


async def test_a_versioned_read_cut_short_gives_its_connection_back_to_serve_the_next(database):
    """A read abandoned mid-flight (a client gone, a deadline) hands back its pooled
    connection (read_versioned takes and returns it itself): with a pool of one, the next
    read is served at once, on a session with no scope left and no statement running."""
    from app.storage.db import Read

    db = await Database(database.app_url, min_size=1, max_size=1, timeout=5).open(wait=30)
    slow = Read("SELECT pg_sleep(%(s)s::float8), current_setting('app.tenant')", {"s": 30},
                lambda rows: rows[0])
    quick = Read("SELECT current_setting('app.tenant'),"
                 " (SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep%%'"
                 "  AND state = 'active' AND pid <> pg_backend_pid())",
                 {}, lambda rows: rows[0])
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(db.read_versioned("tenant-a", slow), 0.5)
        started = time.monotonic()
        assert (await db.read_versioned("tenant-b", quick))[1] == ("tenant-b", 0)
        assert time.monotonic() - started < 3.0
        async with db.system() as conn:
            setting = await (await conn.execute(
                "SELECT coalesce(current_setting('app.tenant', true), '')")).fetchone()
            assert setting == ("",)
    finally:
        await db.close()


async def test_list_pages_reuse_one_generic_plan_per_connection(database):
    """A list page is planned once per pooled connection (its generic plan, SET LOCAL for
    the read alone), whatever its values: PostgreSQL left to choose re-planned it on every
    EXECUTE. Pages of different sizes and severities still hold exactly their reports."""
    from app.storage import reports as report_store
    from tests.factories import small_report, store

    tenant = f"plans-{uuid.uuid4().hex[:8]}"
    db = await Database(database.app_url, min_size=1, max_size=1).open(wait=30)
    try:
        stored = await store(db, tenant, *([small_report(severity=s, subject=f"s{n}")]
                                           for n, s in enumerate(["block", "warn"] * 6)))
        statement = None
        for n in range(1, 9):
            severity = ("block", "warn")[n % 2]
            read = report_store.list_page_json(tenant=tenant, params={"severity": [severity],
                                                                      "page_size": n},
                                               sort="received_at", descending=True)
            statement = read.statement
            _, page = await db.read_versioned(tenant, read)
            subjects = [item["subject"] for item in orjson.loads(page.items)]
            expected = [r.row.subject for r in reversed(stored) if r.row.severity == severity]
            assert subjects == expected[:n] and page.more == (len(expected) > n)
        name = prepared_form(statement)[0]
        async with db.system() as conn:  # the pool's one connection
            plans = await (await conn.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s",
                (name,))).fetchone()
            mode = await (await conn.execute("SELECT current_setting('plan_cache_mode')")).fetchone()
        assert plans == (8, 0)
        assert mode == ("auto",)  # the setting ended with each read
    finally:
        await db.close()


@pytest.mark.parametrize("sort", ["received_at", "observed_at"])
@pytest.mark.parametrize("descending", [True, False])
async def test_a_page_hands_on_the_exact_position_of_its_last_item(database, owner, sort,
                                                                  descending):
    """The next cursor's position is read from the page's last item where the item holds
    the sort key to the microsecond (received_at), else selected with the page: either
    way it is that row's own (sort key, id), to the microsecond, also for a row written
    before items were rendered at write time (summary NULL)."""
    from app.storage import reports as report_store
    from tests.factories import small_report, store

    tenant = f"position-{uuid.uuid4().hex[:8]}"
    db = await Database(database.app_url, min_size=1, max_size=1).open(wait=30)
    try:
        await store(db, tenant, *([small_report(
            subject=f"s{n}", observed_at=f"2026-11-21T00:00:0{n}.123456789+01:00")]
            for n in range(4)))
        owner.execute("UPDATE reports SET summary = NULL WHERE tenant_id = %s AND subject = 's1'",
                      (tenant,))
        direction = "DESC" if descending else "ASC"
        rows = owner.execute(f"SELECT {sort}, id FROM reports WHERE tenant_id = %s "
                             f"ORDER BY {sort} {direction}, id {direction}", (tenant,)).fetchall()
        assert any(row[0].microsecond for row in rows)  # a key cut to the second would differ
        for size in (1, 2, 3):
            read = report_store.list_page_json(tenant=tenant, params={"page_size": size},
                                               sort=sort, descending=descending)
            _, page = await db.read_versioned(tenant, read)
            assert page.more and page.last == rows[size - 1]
    finally:
        await db.close()


async def test_a_page_of_50_comes_in_one_wake_up_of_the_event_loop(database, monkeypatch):
    """libpq's input buffer starts at 16 KB, so a page of 50 (here ~30 KB) took two event
    loop wake-ups per read, the second for bytes already in the socket; the pools grow the
    buffer when a connection opens (db.GROW_INPUT_BUFFER). Counted against pools without
    that: every read there needs two."""
    import psycopg.waiting

    from app.storage import db as db_module
    from app.storage import reports as report_store
    from tests.factories import small_report, store

    wakes = 0
    waiting = psycopg.waiting.wait_async

    async def counted(gen: Any, fileno: int, *args: Any, **kwargs: Any) -> Any:
        def counting() -> Any:
            nonlocal wakes
            try:
                state = next(gen)
            except StopIteration as done:
                return done.value
            while True:
                wakes += 1
                try:
                    state = gen.send((yield state))
                except StopIteration as done:
                    return done.value
        return await waiting(counting(), fileno, *args, **kwargs)

    tenant = f"wakes-{uuid.uuid4().hex[:8]}"
    padding = {f"label{n}": "x" * 40 for n in range(5)}
    setup = await Database(database.app_url, min_size=1, max_size=1).open(wait=30)
    try:
        await store(setup, tenant, [small_report(subject=f"s{n}", labels=padding)
                                    for n in range(60)])
    finally:
        await setup.close()

    async def wakes_per_read() -> list[int]:
        nonlocal wakes
        db = await Database(database.app_url, min_size=1, max_size=1).open(wait=30)
        try:
            counts = []
            for _ in range(20):
                read = report_store.list_page_json(tenant=tenant, params={"page_size": 50},
                                                   sort="received_at", descending=True)
                wakes = 0
                _, page = await db.read_versioned(tenant, read)
                counts.append(wakes)
            assert len(page.items) > 16 * 1024
            return counts
        finally:
            await db.close()

    monkeypatch.setattr(psycopg.waiting, "wait_async", counted)
    grown = await wakes_per_read()

    async def unchanged(conn: Any) -> None:
        return None

    monkeypatch.setattr(db_module, "grow_input_buffer", unchanged)
    assert min(await wakes_per_read()) >= 2
    assert sorted(grown)[len(grown) // 2] == 1  # the median read: one wake-up
