"""The one translation of driver errors into domain errors (app/storage/db.py)."""

from __future__ import annotations

import pytest
from psycopg import errors as pg
from psycopg_pool import PoolTimeout

from app.errors import ServiceUnavailable
from app.storage.db import Database, Retryable, translate


@pytest.mark.parametrize("exc", [
    pg.AdminShutdown("terminating connection due to administrator command"),
    pg.CrashShutdown("crash"),
    pg.CannotConnectNow("the database system is starting up"),
    pg.TooManyConnections("sorry, too many clients already"),
    pg.DiskFull("could not extend file"),
    pg.OperationalError("server closed the connection unexpectedly"),
    pg.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
    PoolTimeout("couldn't get a connection after 10.00 sec"),
], ids=lambda e: type(e).__name__)
def test_an_unavailable_database_is_a_503_with_retry_after(exc):
    domain = translate(exc)
    assert type(domain) is ServiceUnavailable
    assert domain.status == 503 and int(domain.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("exc", [pg.SerializationFailure("x"), pg.DeadlockDetected("x")],
                         ids=lambda e: type(e).__name__)
def test_a_conflict_abort_is_retryable_and_else_a_503(exc):
    domain = translate(exc)
    assert isinstance(domain, Retryable) and domain.status == 503


def test_bugs_are_not_translated():
    assert translate(pg.UndefinedColumn("column x does not exist")) is None
    assert translate(pg.UniqueViolation("duplicate key")) is None  # no known constraint
    assert translate(ValueError("x")) is None


async def test_an_idempotent_unit_runs_once_more_after_a_conflict_and_only_once():
    db = Database("postgresql://127.0.0.1:1/none")
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Retryable("deadlock")
        return "done"

    assert await db.idempotent(flaky) == "done" and len(calls) == 2

    async def always() -> None:
        raise Retryable("deadlock")

    with pytest.raises(ServiceUnavailable):
        await db.idempotent(always)
