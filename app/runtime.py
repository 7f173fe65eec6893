"""The process's long-lived parts (the Database, group committer, caches), built at start-up."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app import observability, tracing
from app.config import Settings
from app.observability import ReplicaState
from app.services.access import keys as key_service
from app.services.access.keys import KeyCache
from app.services.access.ratelimit import AddressThrottle, RateLimiter
from app.services.alerts import channel_secrets
from app.services.evidence import signing
from app.services.exports import signed_urls
from app.services.ingest import service as ingest_service
from app.services.ingest.group_commit import GroupCommitter
from app.services.ops import metrics as ops
from app.storage import changes
from app.storage.db import Database

if TYPE_CHECKING:
    from app.conditional import Validators

log = logging.getLogger("qc_collector.runtime")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    committer: GroupCommitter[ingest_service.Work]
    signing: signing.SigningKeys
    keys: KeyCache = field(default_factory=KeyCache)
    # the tenant's token bucket; refused credentials and console logins per client address
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 0))
    credential_throttle: AddressThrottle = field(
        default_factory=lambda: AddressThrottle("credential", 0))
    login_throttle: AddressThrottle = field(default_factory=lambda: AddressThrottle("login", 0))
    validators: Validators = field(default_factory=lambda: _validators())
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def idempotency_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.idempotency_ttl_hours)

    @property
    def in_flight_timeout(self) -> timedelta:
        return timedelta(seconds=self.settings.idempotency_in_flight_seconds)

    def pools(self) -> dict[str, Any]:
        """This worker's pools by name, for qcc_db_pool."""
        pools = {"primary": self.db.pool}
        if self.db.replica is not None:
            pools["replica"] = self.db.replica.pool
        return pools

    def replica_reads(self) -> dict[str, int] | None:
        replica = self.db.replica
        return None if replica is None else {"replica": replica.served,
                                             "primary": replica.fell_back}

    def replica_state(self) -> ReplicaState | None:
        status = self.db.replica_status()
        return None if status is None else ReplicaState(status.reads_enabled, status.lag_seconds)

    def spawn(self, coro: Any) -> None:
        """Fire-and-forget work (e.g. last-used stamps) that must not fail a request."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed: %s", task.exception().__class__.__name__)


def _validators(answer_bytes: int = 0) -> Validators:
    # app.conditional reaches the runtime per request; imported here, not at the top
    from app.conditional import Validators

    return Validators(answer_bytes)


_current: Runtime | None = None


def get() -> Runtime:
    if _current is None:
        raise RuntimeError("the application has not started")
    return _current


def current() -> Runtime | None:
    """The runtime, or None before start-up and after shutdown."""
    return _current


async def start(settings: Settings) -> Runtime:
    global _current
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (qc-collector serve sets it in embedded mode)")
    signing_keys = signing.load(settings)  # refuses to start in production without a key
    channel_secrets.vault(settings)  # likewise without ENCRYPTION_KEY
    signed_urls.sign_secret(settings)  # likewise for the download-URL key
    db = Database(settings.database_url, min_size=settings.db_pool_min,
                  max_size=settings.db_pool_max, timeout=settings.db_pool_timeout,
                  prepare_threshold=settings.db_prepare_threshold,
                  read_conninfo=settings.database_read_url,
                  read_max_lag=settings.read_max_lag_seconds,
                  read_wait=settings.read_wait_seconds)
    committer = ingest_service.committer(db=db, alert_window=settings.alert_dedup_window)
    committer.start()
    runtime = Runtime(settings=settings, db=db, committer=committer, signing=signing_keys,
                      limiter=RateLimiter(settings.rate_limit_per_tenant, settings.rate_limit_burst),
                      credential_throttle=AddressThrottle("credential",
                                                          settings.auth_failures_per_minute),
                      login_throttle=AddressThrottle("login", settings.console_login_per_minute),
                      validators=_validators(settings.answer_memory_bytes))
    _current = runtime
    try:
        await db.open(wait=15)
        if settings.api_keys:
            await key_service.sync_env_keys(db=db, keys=settings.api_keys)
    except Exception as exc:  # keep serving /health; /ready reports the database
        log.error("start-up database work failed: %s", exc.__class__.__name__)
    runtime.spawn(observability.sample_loop(
        runtime.pools, observability.ProcessMirror() if settings.prometheus_multiproc_dir else None,
        runtime.replica_reads))
    runtime.spawn(ops.flush_loop(db=db, every=settings.ops_flush_seconds))
    # LISTEN needs a session: behind a transaction-mode pooler WORKER_DATABASE_URL is the
    # direct connection (as for the job queue)
    validators = runtime.validators
    runtime.spawn(changes.follow(settings.worker_database_url or settings.database_url,
                                 changed=validators.changed, alive=validators.alive,
                                 lost=validators.lost))
    return runtime


async def stop() -> None:
    global _current
    runtime, _current = _current, None
    if runtime is None:
        return
    for task in list(runtime._tasks):
        task.cancel()
    try:  # a stopping worker's last request counts
        await ops.flush(db=runtime.db)
    except Exception as exc:
        log.warning("ops metrics final flush failed: %s", exc.__class__.__name__)
    await runtime.committer.stop()
    await runtime.db.close()
    tracing.shutdown()
