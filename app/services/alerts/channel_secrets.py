"""Channel secrets at rest (AES-256-GCM under ENCRYPTION_KEY) and their masked views.

A sealed value is: version byte, 4-byte key id (sha256 prefix of the key, so a value
sealed under another key is recognised as such), 12-byte random nonce, ciphertext+tag.
The associated data binds it to its tenant and rule, so a copied ciphertext does not
open in another row. Old keys (ENCRYPTION_KEYS_OLD) still open what they sealed until
`qc-collector rotate-encryption` re-seals it. Outside production a key is generated under the data dir (shared
by the API and a worker on the same machine); production refuses to start without one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import ConfigError, Settings
from app.services.access.local_secrets import read_or_create
from app.storage import alerts as alert_store
from app.storage import retention as retention_store
from app.storage.db import Database

VERSION = 1


class SecretsUnreadable(Exception):
    """The sealed value does not open under this ENCRYPTION_KEY (changed key, or tampered)."""


class Vault:
    """Seals under ENCRYPTION_KEY; opens under it or any key of ENCRYPTION_KEYS_OLD (the
    key id in the sealed value says which), so the key can be rotated without downtime."""

    def __init__(self, key: bytes, old: tuple[bytes, ...] = ()) -> None:
        if len(key) != 32 or any(len(k) != 32 for k in old):
            raise ConfigError("ENCRYPTION_KEY must be the base64 of exactly 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).digest()[:4]
        self._ring = {hashlib.sha256(k).digest()[:4]: AESGCM(k) for k in old}
        self._ring[self.key_id] = self._aead

    def seal(self, value: Any, *, context: str) -> bytes:
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, orjson.dumps(value), context.encode())
        return bytes([VERSION]) + self.key_id + nonce + ciphertext

    def open(self, sealed: bytes, *, context: str) -> Any:
        if len(sealed) < 17 + 16 or sealed[0] != VERSION:
            raise SecretsUnreadable("unknown format")
        aead = self._ring.get(bytes(sealed[1:5]))
        if aead is None:
            raise SecretsUnreadable("sealed under another ENCRYPTION_KEY (not in "
                                    "ENCRYPTION_KEYS_OLD either)")
        try:
            return orjson.loads(aead.decrypt(sealed[5:17], sealed[17:], context.encode()))
        except InvalidTag:
            raise SecretsUnreadable("does not authenticate") from None

    def current(self, sealed: bytes) -> bool:
        """Sealed under ENCRYPTION_KEY itself (nothing to re-seal)."""
        return bytes(sealed[1:5]) == self.key_id

    def reseal(self, sealed: bytes, *, context: str) -> bytes:
        return self.seal(self.open(sealed, context=context), context=context)


def parse_key(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("ENCRYPTION_KEY must be base64 (of 32 random bytes)") from None
    if len(key) != 32:
        raise ConfigError("ENCRYPTION_KEY must be the base64 of exactly 32 bytes")
    return key


@cache
def vault(settings: Settings) -> Vault:
    old = tuple(parse_key(k) for k in settings.encryption_keys_old)
    if settings.encryption_key:
        return Vault(parse_key(settings.encryption_key), old)
    if settings.environment == "production":
        raise ConfigError("ENCRYPTION_KEY is required when COLLECTOR_ENV=production")
    raw = read_or_create(settings.data_dir / "encryption-key",
                         lambda: base64.b64encode(os.urandom(32)), what="ENCRYPTION_KEY")
    return Vault(parse_key(raw.decode()), old)


async def reseal_all(*, db: Database, settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """`qc-collector rotate-encryption`: every rule's sealed secrets that are not under
    ENCRYPTION_KEY are opened with ENCRYPTION_KEYS_OLD and sealed again under it, one
    transaction per tenant, audited (encryption.rotate) where anything changed. Running
    it again changes nothing. Returns (re-sealed, unreadable) counts per tenant; an
    unreadable rule (its key is in neither setting) is left as it is."""
    keys = vault(settings)
    async with db.system() as conn:
        tenants = await retention_store.tenants(conn)
    resealed: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    for tenant in tenants:
        async with db.tenant(tenant, actor="cli") as conn:
            count = 0
            for rule_id, sealed in await alert_store.sealed_rules(conn, tenant=tenant):
                if keys.current(sealed):
                    continue
                try:
                    fresh = keys.reseal(sealed, context=rule_context(tenant, rule_id))
                except SecretsUnreadable:
                    unreadable[tenant] = unreadable.get(tenant, 0) + 1
                    continue
                await alert_store.reseal_rule(conn, tenant=tenant, rule_id=rule_id, sealed=fresh)
                count += 1
            if count:
                await alert_store.audit_reseal(conn, tenant=tenant, count=count,
                                               key_id=keys.key_id.hex())
                resealed[tenant] = count
    return resealed, unreadable


def rule_context(tenant: str, rule_id: object) -> str:
    return f"qcc-alert-rule\n{tenant}\n{rule_id}"


# -- masked views ---------------------------------------------------------------------


def _tail(secret: str) -> str:
    # the last four characters help to recognise a long secret; a short one shows nothing
    return secret[-4:] if len(secret) >= 16 else ""


def mask_url(url: str) -> str:
    """scheme://host[:port]/…tail — paths carry tokens (Slack's do), so never the path."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = url[len(f"{parts.scheme}://{parts.netloc}"):]
    return f"{parts.scheme}://{host}{port}/…{_tail(rest)}" if rest.strip("/") else \
        f"{parts.scheme}://{host}{port}/"


def target(channel: dict[str, Any]) -> str:
    """What the API shows for a channel: enough to recognise it, never the secret."""
    kind = channel["type"]
    if kind == "slack":
        return mask_url(channel["url"])
    if kind == "webhook":
        return mask_url(channel["url"]) + " (signed)"
    if kind == "pagerduty":
        tail = _tail(channel["routing_key"])
        return f"routing key …{tail}" if tail else "routing key …"
    return ", ".join(channel["to"])


def view(channel: dict[str, Any]) -> dict[str, str]:
    return {"type": channel["type"], "target": target(channel)}


def secret_strings(channel: dict[str, Any]) -> list[str]:
    """The parts of a channel that must never appear in a log line or a response."""
    return [channel[k] for k in ("url", "routing_key", "secret") if channel.get(k)]
