"""Reads on a streaming replica (DATABASE_READ_URL) with read-your-writes.

The rule: a read may run on the replica only once the replica has replayed everything
the primary had made durable when the read began. Each read unit asks the primary for its
WAL flush position (`pg_current_wal_flush_lsn()`: no table, no lock, microseconds; with
synchronous_commit on, the default the service keeps, a commit is visible only once its
commit record is flushed, so this covers every write a client could have seen; the
insert position would also cover WAL of transactions still running and wait for the WAL
writer, measured at +11 ms p50 per read) and checks the
replica's replay position against it in the replica transaction's first round trip; if
the replica is behind it polls for up to READ_WAIT_SECONDS, then the read runs on the
primary. So no client — the writer or anyone else — reads data older than a write
committed before its request, without tokens to echo. ETags are read from the primary
before the data, so a 304 is never answered from data older than its validator.

A health loop (every CHECK_SECONDS) measures lag and turns replica reads off (all reads
on the primary) while the replica is down, is no longer a standby (promoted), or lags
more than READ_MAX_LAG_SECONDS; /ready and /metrics report it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("qc_collector.storage.replica")

CHECK_SECONDS = 1.0
ACQUIRE_TIMEOUT_SECONDS = 1.0  # a replica that cannot hand out a connection is skipped
POLL_SECONDS = 0.002
PROBE_TIMEOUT_SECONDS = 2.0

PRIMARY_POSITION = "SELECT pg_current_wal_flush_lsn()::text"
REPLICA_STATE = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
CAUGHT_UP = "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)"


def lsn(text: str) -> int:
    """A pg_lsn's text form (`16/B374D848`) as a number."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class ReplicaStatus:
    reads_enabled: bool
    lag_seconds: float | None
    reason: str  # "ok" or why reads fell back to the primary


class Replica:
    """The replica's pool and its health, owned by the Database."""

    def __init__(self, conninfo: str, *, min_size: int, max_size: int, max_lag: float,
                 wait: float, prepare_threshold: int | None,
                 configure: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]) -> None:
        self.conninfo = conninfo
        self.pool = AsyncConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, open=False,
            kwargs={"autocommit": True, "prepare_threshold": prepare_threshold},
            name="qc-collector-replica", timeout=ACQUIRE_TIMEOUT_SECONDS, reconnect_timeout=5.0,
            configure=configure)
        self.max_lag = max_lag
        self.wait = wait
        # until the first check has seen the replica, reads stay on the primary
        self.status = ReplicaStatus(False, None, "not checked yet")
        # (when, primary position) of each check the replica has not replayed yet
        self._pending: deque[tuple[float, int]] = deque(maxlen=10_000)
        self._task: asyncio.Task[None] | None = None
        self._probe: psycopg.AsyncConnection | None = None
        self.served = 0  # reads answered by the replica (this process)
        self.fell_back = 0  # reads the replica was too far behind for

    @property
    def usable(self) -> bool:
        return self.status.reads_enabled

    async def open(self, primary: AsyncConnectionPool) -> None:
        await self.pool.open(wait=False)
        self._task = asyncio.get_running_loop().create_task(self._watch(primary))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._probe is not None:
            await self._probe.close()
        await self.pool.close()

    def disable(self, reason: str) -> None:
        """A read found the replica broken: the primary serves until the next good check."""
        if self.status.reads_enabled:
            log.warning("replica reads off: %s", reason)
        self.status = ReplicaStatus(False, self.status.lag_seconds, reason)

    async def caught_up(self, conn: psycopg.AsyncConnection, position: str,
                        already: bool) -> bool:
        """Polls (in the caller's transaction) until the replica has replayed `position`;
        `already`: the answer of the unit's first round trip."""
        deadline = time.monotonic() + self.wait
        while not already:
            if time.monotonic() >= deadline:
                self.fell_back += 1
                return False
            await asyncio.sleep(POLL_SECONDS)
            cur = await conn.execute(CAUGHT_UP, (position,))
            row = await cur.fetchone()
            already = bool(row and row[0])
        self.served += 1
        return True

    async def _watch(self, primary: AsyncConnectionPool) -> None:
        while True:
            try:
                await self.check(primary)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep watching
                log.warning("replica check failed: %s", exc.__class__.__name__)
            await asyncio.sleep(CHECK_SECONDS)

    async def check(self, primary: AsyncConnectionPool) -> ReplicaStatus:
        """Lag = age of the oldest primary position (sampled at each check) the replica
        has not replayed yet: an idle primary never looks like lag, a busy one is not
        mistaken for lag because its position always moves on."""
        async with primary.connection() as conn:
            cur = await conn.execute(PRIMARY_POSITION)
            position = (await cur.fetchone() or ("0/0",))[0]
        self._pending.append((time.monotonic(), lsn(position)))
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                if self._probe is None or self._probe.closed:
                    self._probe = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True,
                        connect_timeout=int(PROBE_TIMEOUT_SECONDS))
                cur = await self._probe.execute(REPLICA_STATE)
                in_recovery, replayed = await cur.fetchone() or (False, None)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if self._probe is not None:
                await self._probe.close()
                self._probe = None
            self._set(ReplicaStatus(False, None, f"replica unreachable ({exc.__class__.__name__})"))
            return self.status
        done = lsn(replayed) if replayed else 0
        while self._pending and self._pending[0][1] <= done:
            self._pending.popleft()
        lag = time.monotonic() - self._pending[0][0] if self._pending else 0.0
        if not in_recovery:
            status = ReplicaStatus(False, None, "replica is not a standby (promoted?)")
        elif lag > self.max_lag:
            status = ReplicaStatus(False, lag, f"replica lags {lag:.1f} s")
        else:
            status = ReplicaStatus(True, lag, "ok")
        self._set(status)
        return status

    def _set(self, status: ReplicaStatus) -> None:
        if status.reads_enabled != self.status.reads_enabled:
            log.warning("replica reads %s: %s", "on" if status.reads_enabled else "off",
                        status.reason)
        self.status = status
