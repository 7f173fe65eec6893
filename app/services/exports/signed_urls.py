"""Signed, expiring download links, and the download behind them (no API key: the link
is the credential). The signature covers tenant, export, file hash and expiry."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from uuid import UUID

from app.config import Settings
from app.errors import Forbidden, Gone
from app.services.access.local_secrets import read_or_create
from app.services.exports.store import ExportStore
from app.storage import exports as export_store
from app.storage.db import Database


@cache
def sign_secret(settings: Settings) -> bytes:
    if settings.export_sign_secret:
        return settings.export_sign_secret.encode()
    if settings.environment == "production":
        from app.config import ConfigError
        raise ConfigError("EXPORT_SIGN_SECRET is required when COLLECTOR_ENV=production")
    return read_or_create(settings.data_dir / "export-sign-secret",
                          lambda: os.urandom(32).hex().encode(), what="EXPORT_SIGN_SECRET")


def url_signature(secret: bytes, tenant: str, export_id: UUID, sha256: str, expires: int) -> str:
    message = f"{tenant}\n{export_id}\n{sha256}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def download_url(secret: bytes, tenant: str, export_id: UUID, sha256: str,
                 ttl: int, now: float | None = None) -> tuple[str, int]:
    # expiry rounded up to the minute: the URL (and the ETag of GET /exports/{id}) stays
    # stable for a minute instead of changing on every poll
    expires = (int((now or time.time()) + ttl) // 60 + 1) * 60
    sig = url_signature(secret, tenant, export_id, sha256, expires)
    return f"/exports/{export_id}/download?expires={expires}&sig={sig}", expires


@dataclass(frozen=True, slots=True)
class Download:
    path: Path
    sha256: str
    size: int
    media_name: str


async def download(*, db: Database, settings: Settings, store: ExportStore, export_id: UUID,
                   expires: int, sig: str, now: float | None = None) -> Download:
    async with db.system() as conn:
        found = await export_store.find(conn, export_id=export_id)
    # The current secret, then the previous ones (EXPORT_SIGN_SECRETS_OLD): a rotation
    # leaves every outstanding link working until it expires.
    tenant, sha256 = (found["tenant_id"], found["sha256"] or "") if found else ("", "")
    valid = False
    for secret in (sign_secret(settings), *(s.encode() for s in settings.export_sign_secrets_old)):
        expected = url_signature(secret, tenant, export_id, sha256, expires)
        valid = hmac.compare_digest(expected, sig) or valid
    if found is None or not found["sha256"] or not valid:
        raise Forbidden("this download link is not valid")
    if expires < (now or time.time()):
        raise Gone("this download link has expired; ask GET /exports/{id} for a new one")
    path = store.locate(found["tenant_id"], found["file_name"])
    if found["status"] != "succeeded" or path is None:
        raise Gone("the export file has expired")
    return Download(path, found["sha256"], found["bytes"], found["file_name"])
