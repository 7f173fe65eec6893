"""Channel secrets at rest (AES-256-GCM under ENCRYPTION_KEY) and their masked views.

A sealed value is: version byte, 4-byte key id (sha256 prefix of the key, so a value
sealed under another key is recognised as such), 12-byte random nonce, ciphertext+tag.
The associated data binds it to its tenant and rule, so a copied ciphertext does not
open in another row. Outside production a key is generated under the data dir (shared
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
from app.services.local_secrets import read_or_create

VERSION = 1


class SecretsUnreadable(Exception):
    """The sealed value does not open under this ENCRYPTION_KEY (changed key, or tampered)."""


class Vault:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("ENCRYPTION_KEY must be the base64 of exactly 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).digest()[:4]

    def seal(self, value: Any, *, context: str) -> bytes:
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, orjson.dumps(value), context.encode())
        return bytes([VERSION]) + self.key_id + nonce + ciphertext

    def open(self, sealed: bytes, *, context: str) -> Any:
        if len(sealed) < 17 + 16 or sealed[0] != VERSION:
            raise SecretsUnreadable("unknown format")
        if sealed[1:5] != self.key_id:
            raise SecretsUnreadable("sealed under another ENCRYPTION_KEY")
        try:
            return orjson.loads(self._aead.decrypt(sealed[5:17], sealed[17:], context.encode()))
        except InvalidTag:
            raise SecretsUnreadable("does not authenticate") from None


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
    if settings.encryption_key:
        return Vault(parse_key(settings.encryption_key))
    if settings.environment == "production":
        raise ConfigError("ENCRYPTION_KEY is required when COLLECTOR_ENV=production")
    raw = read_or_create(settings.data_dir / "encryption-key",
                         lambda: base64.b64encode(os.urandom(32)), what="ENCRYPTION_KEY")
    return Vault(parse_key(raw.decode()))


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
