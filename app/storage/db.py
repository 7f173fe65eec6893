"""The one database boundary: the `Database` object every service reaches PostgreSQL through.

It owns the connection pool, opens tenant transactions (SET LOCAL for row-level
security) and plain connections for system work, and translates driver errors in one
place (`translate`, the procrastinate `wrap_exceptions` way):

- the database cannot serve now (connection lost, admin/crash shutdown, too many
  connections, no pooled connection in time, disk full) -> ServiceUnavailable (503 +
  Retry-After);
- serialization failure / deadlock (the transaction rolled back whole) -> Retryable, which
  `Database.idempotent` runs once more and which is otherwise a 503;
- a named constraint -> the domain error it stands for.

Nothing above app/storage imports psycopg or touches the pool.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import orjson
import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app import tracing
from app.errors import Conflict, DomainError, ServiceUnavailable
from app.storage.replica import PRIMARY_POSITION, Replica, ReplicaStatus

log = logging.getLogger("qc_collector.storage")

set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)

# UTC: date_trunc buckets and timestamps are UTC whatever the server's default.
SESSION_OPTIONS = "-c TimeZone=UTC"
APPLICATION_NAME = "qc-collector"

Connection = psycopg.AsyncConnection
T = TypeVar("T")
R = TypeVar("R", covariant=True)

POOL_TIMEOUT_SECONDS = 5.0  # below every client and proxy timeout: a 503, never a hang
PROBE_TIMEOUT_SECONDS = 2.0
PROBE_CACHE_SECONDS = 1.0  # /ready polled many times a second asks PostgreSQL once
PROBE_FAILURE_CACHE_SECONDS = 0.5  # while down, requests are refused without queueing
# How long the pool keeps retrying (with backoff) a connection it lost; after that it
# tries again only when a request asks, so a database back after a long outage is used
# at once instead of at the next backoff step.
RECONNECT_SECONDS = 5.0
RETRY_AFTER_SECONDS = 2

# SQLSTATE classes where PostgreSQL cannot serve now but may in a moment: 08 connection
# exception, 53 insufficient resources (too many connections, disk full, out of memory),
# 57 operator intervention (admin/crash shutdown, cannot connect now); 25006: a read-only
# transaction (the primary was demoted by a failover).
UNAVAILABLE_CLASSES = ("08", "53", "57")
UNAVAILABLE_STATES = {"25006"}
# The transaction was rolled back whole; running the same unit again is safe.
RETRYABLE_STATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected

# Named constraints -> the domain error a violation means (secrets are 256-bit random, so
# these collide only on a bug or a replayed secret).
CONSTRAINTS: dict[str, Callable[[], DomainError]] = {
    "api_keys_secret_unique": lambda: Conflict("an API key with this secret already exists"),
    "console_sessions_secret_unique": lambda: Conflict("this console session already exists"),
    "alert_deliveries_channel_once": lambda: Conflict(
        "this notification already has a delivery on that channel"),
}


@dataclass(frozen=True, slots=True)
class Read(Generic[R]):
    """A read that is one statement: its text (psycopg `%(name)s` placeholders), its
    parameters and how its rows become the value. `Database.read_versioned` sends it with
    the tenant scope in one round trip; `run` executes it on a connection already scoped."""

    statement: str
    params: Mapping[str, Any]
    result: Callable[[list[Any]], R]
    dict_rows: bool = False  # rows as dicts by column name (else tuples)
    # The statement is composed per filter shape (no "x IS NULL OR ..." branches), so one
    # plan fits every value: run it on the prepared statement's generic plan. Left to
    # choose, PostgreSQL re-plans such a statement on every EXECUTE because its LIMIT is a
    # parameter (a generic LIMIT is costed at a tenth of the table): 0.6 ms of planning
    # per list page, 800 -> 500 us of the server's CPU per page (median of 5, interleaved).
    generic_plan: bool = False

    async def run(self, conn: Connection) -> R:
        async with conn.cursor(row_factory=dict_row if self.dict_rows else tuple_row) as cur:
            await cur.execute(self.statement, self.params)
            return self.result(await cur.fetchall())


class Retryable(ServiceUnavailable):
    """A serialization failure or deadlock: nothing of the unit of work was kept."""


def translate(exc: BaseException) -> DomainError | None:
    """The one place driver errors become domain errors; None: not a database condition
    the caller can act on (a bug, rendered as 500)."""
    if isinstance(exc, PoolTimeout):
        return ServiceUnavailable("no database connection became free in time; retry later",
                                  retry_after=RETRY_AFTER_SECONDS)
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if state in RETRYABLE_STATES:
        return Retryable("the database aborted a conflicting transaction; retry",
                         retry_after=1)
    if isinstance(exc, psycopg.IntegrityError):
        make = CONSTRAINTS.get(exc.diag.constraint_name or "")
        return make() if make is not None else None
    if (isinstance(exc, psycopg.OperationalError) or state[:2] in UNAVAILABLE_CLASSES
            or state in UNAVAILABLE_STATES):
        return ServiceUnavailable("the database is unavailable; retry later",
                                  retry_after=RETRY_AFTER_SECONDS)
    return None


# libpq reads a result into an input buffer of 16 KB at first, and psycopg waits on the
# event loop whenever a read left the result incomplete: a list page of 50 (20-30 KB) took
# two wake-ups, the second for bytes already in the socket. libpq enlarges the buffer for a
# message that does not fit and never shrinks it, so one 40 KB value when a connection
# opens makes it 64 KB for the connection's life: one wake-up per page, 102 against 130 µs
# of the client's CPU per page (1,000 pages each, one connection). 64 KB per pooled
# connection.
GROW_INPUT_BUFFER = "SELECT repeat(' ', 40000)"


async def grow_input_buffer(conn: Connection) -> None:
    """The pools' `configure`: see GROW_INPUT_BUFFER."""
    await conn.execute(GROW_INPUT_BUFFER)


def _with_options(conninfo: str) -> str:
    return psycopg.conninfo.make_conninfo(conninfo, options=SESSION_OPTIONS,
                                          application_name=APPLICATION_NAME)


SET_SCOPE = ("SELECT set_config('app.tenant', %s, true), set_config('app.actor_key', %s, true),"
             " set_config('app.actor', %s, true)")
# On the replica the scope and the read-your-writes check share the first round trip.
SET_SCOPE_CAUGHT_UP = (SET_SCOPE + ", coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)")
# A versioned read on the primary: the scope and the tenant's change version (the ETag
# validator, migration 0006) share the first round trip; the version comes last.
SET_SCOPE_VERSION = SET_SCOPE + ", qcc_tenant_version(%s)"
# ... and as the session-level prepared statement that prepared reads EXECUTE before their
# own: only the tenant (a read writes nothing, so no actor for the audit trail), and the
# version read from tenant_versions under the row-level security that the set_config
# before it has scoped (a target list is evaluated in order; an uncorrelated subquery when
# its value is first needed). Prepared, this costs PostgreSQL ~17 µs less per read than
# the statement above (~130 against ~147 µs with a page of 50, 9 rounds of 3,000,
# medians); as text its subquery would be planned on every read, so unprepared reads keep
# the function. A read on its generic plan (`Read.generic_plan`) adds the plan cache mode:
# SET LOCAL, it ends with the read.
READ_SCOPE = ("SELECT set_config('app.tenant', %(tenant)s, true),"
              " coalesce((SELECT version FROM tenant_versions WHERE tenant_id = %(tenant)s), 0)")
READ_SCOPE_GENERIC = ("SELECT set_config('app.tenant', %(tenant)s, true),"
                      " set_config('plan_cache_mode', 'force_generic_plan', true),"
                      " coalesce((SELECT version FROM tenant_versions"
                      " WHERE tenant_id = %(tenant)s), 0)")
# SQLSTATEs of a session that does not hold the prepared statements we think it holds
UNDEFINED_PREPARED, DUPLICATE_PREPARED = "26000", "42P05"
# After this many, reads stop preparing: the server session changes under the connection
# (a transaction-mode pooler that does not track SQL-level PREPARE, e.g. PgBouncer 1.21+
# with prepared statements on, which tracks only the protocol's).
OUT_OF_STEP_LIMIT = 3
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
PREPARED_PREFIX = "qcc_"  # + a hash of the text: the name of a read's prepared statement


def _statement_named(exc: psycopg.Error) -> str | None:
    """The prepared statement an "already exists" or "does not exist" error names."""
    found = re.search(rf'"({PREPARED_PREFIX}[0-9a-f]+)"', exc.diag.message_primary or "")
    return found[1] if found else None


@functools.lru_cache(maxsize=512)
def prepared_form(statement: str) -> tuple[str, str, tuple[str, ...]]:
    """A read's statement as a session-level prepared statement: its name (from the text),
    the text with `$n` placeholders, and the parameter names in `$n` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] is None:
            return "%"
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    text = _PLACEHOLDER.sub(number, statement)
    name = PREPARED_PREFIX + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
    return name, text, tuple(names)


def scope_version_statement(read: Read[Any], *, prepared: bool) -> str:
    """What precedes `read` in its versioned round trip: the scope and the version (named
    `%(tenant)s` placeholders when prepared, else four positional ones: tenant, actor key,
    actor, tenant), and the generic plan when the read wants it and runs prepared."""
    if prepared:
        return READ_SCOPE_GENERIC if read.generic_plan else READ_SCOPE
    return SET_SCOPE_VERSION


def prepared_call(statement: str,
                  params: Mapping[str, Any]) -> tuple[str, str, str, list[Any]]:
    """`statement` as a session-level prepared statement: its name, its PREPARE, and its
    EXECUTE with a `%s` for each of the arguments that follow (taken from `params`), to be
    rendered by psycopg's literal quoting (`mogrify`)."""
    name, server_text, names = prepared_form(statement)
    call = f"EXECUTE {name}({', '.join(['%s'] * len(names))})" if names else f"EXECUTE {name}"
    return name, f"PREPARE {name} AS {server_text}", call, [params[key] for key in names]


class Database:
    """The pool and the ways to use it. One per process; services get it as `db=`.

    With `read_conninfo` (DATABASE_READ_URL) a second pool on a streaming replica serves the
    units opened with `tenant(..., read=True)`, under the read-your-writes rule of
    app/storage/replica.py; everything else runs on the primary."""

    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 10,
                 timeout: float = POOL_TIMEOUT_SECONDS, name: str = APPLICATION_NAME,
                 prepare_threshold: int | None = 5, read_conninfo: str | None = None,
                 read_max_lag: float = 5.0, read_wait: float = 0.1) -> None:
        self.conninfo = _with_options(conninfo)
        # prepare_threshold None (DB_PREPARE_THRESHOLD=off): behind a transaction-mode
        # pooler without prepared-statement support, a statement prepared on one server
        # connection is unknown (or already taken) on the next
        self.pool = AsyncConnectionPool(
            self.conninfo, min_size=min_size, max_size=max_size, open=False,
            kwargs={"autocommit": True, "prepare_threshold": prepare_threshold}, name=name,
            timeout=timeout, reconnect_timeout=RECONNECT_SECONDS, configure=grow_input_buffer)
        self.prepares = prepare_threshold is not None
        self._out_of_step = 0
        # the reads each pooled connection's session has PREPAREd (read_versioned)
        self._prepared: weakref.WeakKeyDictionary[Connection, set[str]] = (
            weakref.WeakKeyDictionary())
        self._probe: Connection | None = None
        self._probe_lock = asyncio.Lock()
        self._probe_ok_at = -PROBE_CACHE_SECONDS
        self._probe_failed_at = -PROBE_FAILURE_CACHE_SECONDS
        self._checking: asyncio.Task[None] | None = None
        # Set when the database failed us: until a probe succeeds, units are refused with a
        # 503 at once instead of each waiting the pool timeout for a connection.
        self._down = False
        self.replica = (Replica(_with_options(read_conninfo), min_size=min_size,
                                max_size=max_size, max_lag=read_max_lag, wait=read_wait,
                                prepare_threshold=prepare_threshold,
                                configure=grow_input_buffer)
                        if read_conninfo else None)

    # -- lifecycle -----------------------------------------------------------------

    async def open(self, *, wait: float | None = None) -> Database:
        """Opens the pool; with `wait`, raises ServiceUnavailable unless min_size
        connections are up within that many seconds."""
        await self.pool.open(wait=False)
        if self.replica is not None:
            await self.replica.open(self.pool)
        if wait is not None:
            try:
                await self.pool.wait(timeout=wait)
            except PoolTimeout as exc:
                raise ServiceUnavailable("the database did not answer at start-up") from exc
        return self

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
        if self._probe is not None:
            await self._probe.close()
            self._probe = None
        if self.replica is not None:
            await self.replica.close()
        await self.pool.close()

    @property
    def reads_on_replica(self) -> bool:
        """Whether `tenant(..., read=True)` units go to the replica now."""
        return self.replica is not None and self.replica.usable

    def replica_status(self) -> ReplicaStatus | None:
        """None without DATABASE_READ_URL."""
        return self.replica.status if self.replica is not None else None

    # -- units of work -----------------------------------------------------------------

    @asynccontextmanager
    async def tenant(self, tenant: str, *, actor_key: UUID | None = None, actor: str = "api",
                     pipeline: bool = False, read: bool = False) -> AsyncIterator[Connection]:
        """A transaction whose row-level security sees only `tenant` (SET LOCAL app.tenant);
        the actor settings name who acts, for the audit triggers. `read`: the unit only
        reads (a replica may serve it).

        Pipeline mode: BEGIN, the settings and every statement up to the first read of a
        result travel in one round trip, and COMMIT rides with the end of the block.
        (Server-side cursors need pipeline=False.)"""
        await self._gate()
        if read and not pipeline and self.replica is not None and self.replica.usable:
            async with AsyncExitStack() as stack:
                conn = await self._on_replica(stack, tenant, actor_key, actor)
                if conn is not None:
                    with self._replica_translated():
                        yield conn
                    return
        with self._translated():
            async with self.pool.connection() as conn:
                if pipeline:
                    async with conn.pipeline(), conn.transaction():
                        await conn.execute(SET_SCOPE, (tenant, str(actor_key or ""), actor))
                        yield conn
                else:
                    async with conn.transaction():
                        await conn.execute(SET_SCOPE, (tenant, str(actor_key or ""), actor))
                        yield conn

    async def read_versioned(self, tenant: str, read: Read[T]) -> tuple[int, T]:
        """A read-only tenant unit on the primary in ONE round trip: the scope with the
        tenant's change version (the ETag validator, migration 0006), then `read`'s
        statement, sent together as one simple query. PostgreSQL runs a multi-statement
        simple query as one implicit transaction, so the scope's SET LOCAL holds for the
        read and ends with it — no BEGIN and COMMIT round trips, and nothing of the scope
        outlives the unit on the pooled connection.

        The scope and the read run as `EXECUTE`s of session-level prepared statements
        (PREPAREd in the same round trip the first time a connection meets them), so
        PostgreSQL plans them once per connection, not per request; arguments are rendered
        by psycopg's literal quoting. With DB_PREPARE_THRESHOLD=off (a transaction-mode
        pooler hands each transaction another server session) the statement text is sent
        instead."""
        await self._gate()
        with self._translated():
            # getconn/putconn, not pool.connection(): its `async with conn` commits an
            # autocommit connection with nothing to commit (a lock and a generator, ~15 µs
            # of the worker's CPU per read). putconn rolls back or replaces a connection
            # that a failure left in a transaction or broken, as it does there.
            conn = await self.pool.getconn()
            try:
                return await self._read_in_step(conn, tenant, read)
            finally:
                await self.pool.putconn(conn)

    async def _read_in_step(self, conn: Connection, tenant: str, read: Read[T]) -> tuple[int, T]:
        """`_read_once`, prepared while this process prepares; when the session does not
        hold what we think it holds, noted and served from the statement's text."""
        try:
            return await self._read_once(conn, tenant, read, prepared=self.prepares)
        except psycopg.Error as exc:
            if exc.sqlstate not in (UNDEFINED_PREPARED, DUPLICATE_PREPARED):
                raise
            # the session lost (or already had) what we prepared: note what it holds and
            # serve this read from its text
            self._out_of_step += 1
            if self._out_of_step >= OUT_OF_STEP_LIMIT and self.prepares:
                self.prepares = False
                log.warning("versioned reads no longer PREPARE: server sessions change "
                            "under pooled connections (a transaction-mode pooler?)")
            known = self._prepared.setdefault(conn, set())
            name = _statement_named(exc)
            if name is None:
                known.clear()
            elif exc.sqlstate == DUPLICATE_PREPARED:
                known.add(name)
            else:
                known.discard(name)
            return await self._read_once(conn, tenant, read, prepared=False)

    async def _read_once(self, conn: Connection, tenant: str, read: Read[T], *,
                         prepared: bool) -> tuple[int, T]:
        cur = psycopg.AsyncClientCursor(conn)
        scope = scope_version_statement(read, prepared=prepared)
        # a statement this session has not met yet is PREPAREd first, in the same text; each
        # PREPARE's result (no rows) comes ahead of the scope's
        prepares: list[str] = []
        if prepared:
            known = self._prepared.setdefault(conn, set())
            templates, args = [], []
            for statement, params in ((scope, {"tenant": tenant}), (read.statement, read.params)):
                name, prepare, template, template_args = prepared_call(statement, params)
                if name not in known:
                    known.add(name)  # noted before it runs: a PREPARE outlives a failed read
                    prepares.append(prepare)
                templates.append(template)
                args += template_args
            # both EXECUTEs quoted in one pass (a PREPARE's text is not a template: it may
            # hold a literal %): ~15 µs of the worker's CPU less per read than one each
            calls = cur.mogrify(";\n".join(templates), args)
        else:
            calls = (cur.mogrify(scope, (tenant, "", "api", tenant)) + ";\n"
                     + cur.mogrify(read.statement, read.params))
        # the instrumentation does not see this cursor: the span shows the text unbound
        with tracing.statement_span(scope + ";\n" + read.statement):
            await cur.execute(";\n".join([*prepares, calls]))
        for _ in prepares:
            cur.nextset()
        row = await cur.fetchone()
        cur.nextset()
        if read.dict_rows:
            cur.row_factory = dict_row  # type: ignore[assignment]  # the read's result only
        rows = await cur.fetchall()
        return (int(row[-1]) if row else 0), read.result(rows)

    async def _on_replica(self, stack: AsyncExitStack, tenant: str, actor_key: UUID | None,
                          actor: str) -> Connection | None:
        """A replica transaction that holds every write the primary had when called, or
        None: the primary must serve (replica behind past READ_WAIT_SECONDS, or broken)."""
        assert self.replica is not None
        with self._translated():  # the position comes from the primary: its errors are its own
            async with self.pool.connection() as primary:
                cur = await primary.execute(PRIMARY_POSITION)
                position = (await cur.fetchone() or ("0/0",))[0]
        unit = AsyncExitStack()
        try:
            conn = await unit.enter_async_context(self.replica.pool.connection())
            await unit.enter_async_context(conn.transaction())
            cur = await conn.execute(SET_SCOPE_CAUGHT_UP,
                                     (tenant, str(actor_key or ""), actor, position))
            row = await cur.fetchone()
            if await self.replica.caught_up(conn, position, bool(row and row[-1])):
                stack.push_async_exit(unit)
                return conn
        except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            self.replica.disable(f"replica failed a read ({exc.__class__.__name__})")
        with suppress(Exception):  # a broken connection may fail its rollback too
            await unit.aclose()
        return None

    @contextmanager
    def _replica_translated(self) -> Iterator[None]:
        """A replica that breaks during a read turns replica reads off (not the primary)."""
        try:
            yield
        except DomainError:
            raise
        except Exception as exc:
            domain = translate(exc)
            if domain is None:
                raise
            if isinstance(domain, ServiceUnavailable) and not isinstance(domain, Retryable):
                assert self.replica is not None
                self.replica.disable(f"replica failed a read ({exc.__class__.__name__})")
            raise domain from exc

    @asynccontextmanager
    async def system(self, *, transaction: bool = False,
                     pipeline: bool = False) -> AsyncIterator[Connection]:
        """A pooled connection with no tenant scope: definer functions that take the tenant
        as a parameter, cross-tenant housekeeping, the group commit (which sets the tenant
        per group). Autocommit unless `transaction`."""
        await self._gate()
        with self._translated():
            async with self.pool.connection() as conn:
                if pipeline:
                    async with conn.pipeline(), conn.transaction():
                        yield conn
                elif transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn

    async def idempotent(self, work: Callable[[], Awaitable[T]]) -> T:
        """Runs a unit of work that keeps nothing outside its own transaction(s), so it may
        run again: a serialization failure or deadlock gets one transparent retry, a second
        one is a 503."""
        try:
            return await work()
        except Retryable:
            log.info("transaction aborted by a conflict; running it once more")
            return await work()

    async def _gate(self) -> None:
        if self._down:
            if not await self.probe():
                raise ServiceUnavailable("the database is unavailable; retry later",
                                         retry_after=RETRY_AFTER_SECONDS)
            self._down = False

    # -- health ------------------------------------------------------------------------

    async def probe(self) -> bool:
        """Is PostgreSQL answering? On a dedicated connection, never the pool: a saturated
        pool must not make /ready wait. A success is remembered PROBE_CACHE_SECONDS."""
        if time.monotonic() - self._probe_ok_at < PROBE_CACHE_SECONDS:
            return True
        if time.monotonic() - self._probe_failed_at < PROBE_FAILURE_CACHE_SECONDS:
            return False
        async with self._probe_lock:
            if time.monotonic() - self._probe_ok_at < PROBE_CACHE_SECONDS:
                return True
            if time.monotonic() - self._probe_failed_at < PROBE_FAILURE_CACHE_SECONDS:
                return False
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                    if self._probe is None or self._probe.closed:
                        self._probe = await Connection.connect(
                            self.conninfo, autocommit=True,
                            connect_timeout=int(PROBE_TIMEOUT_SECONDS))
                    await self._probe.execute("SELECT 1")
            except (psycopg.Error, TimeoutError, OSError) as exc:
                log.warning("database probe failed: %s", exc.__class__.__name__)
                if self._probe is not None:
                    await self._probe.close()
                    self._probe = None
                self._probe_failed_at = time.monotonic()
                return False
            self._probe_ok_at = time.monotonic()
            return True

    # -- the translation -------------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors leave as domain errors (`translate`); an outage is logged once
        here and marks the database down until a probe succeeds."""
        try:
            yield
        except DomainError:
            raise
        except Exception as exc:
            domain = translate(exc)
            if domain is None:
                raise
            if isinstance(domain, ServiceUnavailable) and not isinstance(domain, Retryable):
                log.error("database unavailable: %s (%s)", exc.__class__.__name__,
                          getattr(exc, "sqlstate", None) or "-")
                self._down = True
                if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout):
                    self._lost_connections()
            raise domain from exc

    def _lost_connections(self) -> None:
        """A restart breaks every pooled connection at once: check the idle ones in the
        background so the next requests get live ones instead of failing one by one."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        try:
            await self.pool.check()
        except Exception as exc:  # best effort; a broken connection is also dropped on use
            log.warning("pool check failed: %s", exc.__class__.__name__)

