"""API keys: hashing, lookup with a short cache, env bootstrap, create/list/revoke.

Secrets are only ever hashed (sha256: keys are long random strings, so a slow KDF
buys nothing). Lookups are cached per process for at most KEY_CACHE_SECONDS, which
bounds how long a revoked key keeps working on any worker.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from app.config import ROLES, TENANT_PATTERN, BootstrapKey
from app.errors import BadRequest, NotFound
from app.services.access.principal import Principal
from app.storage import keys as key_store
from app.storage.db import Database

KEY_CACHE_SECONDS = 4.0
SECRET_PREFIX = "qcc_"  # noqa: S105 - a public marker for secret scanners
TOUCH_EVERY_SECONDS = 60.0
# Stable ids for env keys: the same secret always gets the same public id.
ENV_KEY_NAMESPACE = uuid.UUID("8f4b6f0e-6c1d-4a8e-9c55-2f5d0b7f1a10")


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def display_prefix(secret: str) -> str:
    return secret[:12]


class KeyCache:
    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        self._touched: dict[UUID, float] = {}

    def get(self, digest: bytes) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._entries[digest]
            return None
        return entry[0]

    def put(self, digest: bytes, principal: Principal) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (principal, time.monotonic() + self._ttl)

    def should_touch(self, key_id: UUID) -> bool:
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_SECONDS) >= TOUCH_EVERY_SECONDS:
            self._touched[key_id] = now
            return True
        return False


async def authenticate(*, db: Database, cache: KeyCache, secret: str) -> Principal | None:
    digest = hash_secret(secret)
    principal = cache.get(digest)
    if principal is not None:
        return principal
    async with db.system() as conn:
        found = await key_store.lookup(conn, secret_sha256=digest)
    if found is None:
        return None
    principal = Principal(tenant=found[0], key_id=found[1], role=found[2])
    cache.put(digest, principal)
    return principal


async def touch(*, db: Database, principal: Principal) -> None:
    async with db.tenant(principal.tenant) as conn:
        await key_store.touch(conn, tenant=principal.tenant, key_id=principal.key_id)


async def sync_env_keys(*, db: Database, keys: tuple[BootstrapKey, ...]) -> None:
    rows = []
    for key in keys:
        rows.append({
            "tenant": key.tenant,
            "id": str(uuid.uuid5(ENV_KEY_NAMESPACE, hash_secret(key.secret).hex())),
            "name": f"env:{key.tenant}:{key.role}",
            "role": key.role,
            "prefix": display_prefix(key.secret)[:4] + "…",
            "sha256": hash_secret(key.secret).hex(),
        })
    async with db.system(transaction=True) as conn:
        await key_store.sync_env_keys(conn, keys=rows)


def _validate(tenant: str, role: str, name: str) -> None:
    if not TENANT_PATTERN.match(tenant):
        raise BadRequest(f"tenant must match {TENANT_PATTERN.pattern}")
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    if not 1 <= len(name) <= 100:
        raise BadRequest("name must be 1-100 characters")


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: dict[str, Any]
    secret: str  # shown once


async def create(*, db: Database, tenant: str, name: str, role: str, origin: str = "api",
                 actor_key: UUID | None = None) -> CreatedKey:
    _validate(tenant, role, name)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with db.tenant(tenant, actor_key=actor_key, actor=origin) as conn:
        record = await key_store.create(
            conn, tenant=tenant, key_id=uuid.uuid4(), name=name, role=role,
            prefix=display_prefix(secret), secret_sha256=hash_secret(secret), origin=origin)
    return CreatedKey(record, secret)


async def list_keys(*, db: Database, tenant: str) -> list[dict[str, Any]]:
    async with db.tenant(tenant) as conn:
        return await key_store.list_(conn, tenant=tenant)


@dataclass(frozen=True, slots=True)
class RotatedKey:
    record: dict[str, Any]
    secret: str  # shown once


async def rotate(*, db: Database, tenant: str, key_id: UUID, grace_seconds: int,
                 actor_key: UUID | None = None, actor: str = "api") -> RotatedKey:
    """A new secret for the key; the previous one is accepted for grace_seconds more (each
    worker's cache holds a secret for at most KEY_CACHE_SECONDS after its grace ends).
    Audited as key.rotate by the api_keys trigger."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with db.tenant(tenant, actor_key=actor_key, actor=actor) as conn:
        record = await key_store.rotate(conn, tenant=tenant, key_id=key_id,
                                        secret_sha256=hash_secret(secret),
                                        prefix=display_prefix(secret),
                                        grace_seconds=grace_seconds)
    if record is None:
        raise NotFound("no active key with this id in the tenant (keys from API_KEYS are "
                       "rotated by changing API_KEYS)")
    return RotatedKey(record, secret)


async def revoke(*, db: Database, tenant: str, key_id: UUID, actor_key: UUID | None = None,
                 actor: str = "api") -> None:
    async with db.tenant(tenant, actor_key=actor_key, actor=actor) as conn:
        if not await key_store.revoke(conn, tenant=tenant, key_id=key_id):
            raise NotFound("no active key with this id in the tenant")
