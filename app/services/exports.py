"""Exports: request rules, the job the worker runs, and signed expiring download URLs.

The worker streams rows from a server-side cursor through gzip into a temporary file,
hashing the bytes it writes; only a complete file is renamed into place and recorded as
succeeded, so a worker killed mid-job leaves nothing marked done — the job is retried.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from app.config import Settings
from app.errors import DomainError, Forbidden, NotFound, Unprocessable
from app.services.access.local_secrets import read_or_create
from app.services.access.principal import Principal
from app.services.canonical import canonical_bytes, rfc3339
from app.services.reports import Filters, decode_cursor, encode_cursor, etag, matches
from app.storage import exports as export_store
from app.storage.db import Database
from generated.types import ExportRequest

MAX_ACTIVE = 2
LIST_ORDER = "-created_at"  # the cursor's order tag
_RELATIVE = re.compile(r"^-(\d{1,6})([mhd])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
CSV_COLUMNS = ("id", "received_at", "observed_at", "source", "subject", "run_id", "status",
               "severity", "pass", "warn", "fail", "labels", "content_sha256", "signed")


class TooManyExports(DomainError):
    status = 429

    def __init__(self) -> None:
        super().__init__(f"at most {MAX_ACTIVE} exports per tenant may be queued or running; "
                         "retry when one has finished", limit=MAX_ACTIVE)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class Gone(DomainError):
    status = 410


@cache
def sign_secret(settings: Settings) -> bytes:
    if settings.export_sign_secret:
        return settings.export_sign_secret.encode()
    if settings.environment == "production":
        from app.config import ConfigError
        raise ConfigError("EXPORT_SIGN_SECRET is required when COLLECTOR_ENV=production")
    return read_or_create(settings.data_dir / "export-sign-secret",
                          lambda: os.urandom(32).hex().encode(), what="EXPORT_SIGN_SECRET")


def pin(raw: str | None, now: datetime, name: str) -> datetime:
    """An absolute instant for `-7d`-style or RFC 3339 input, fixed at request time."""
    if raw is None:
        return now
    relative = _RELATIVE.match(raw)
    try:
        if relative:
            return now - int(relative.group(1)) * _UNITS[relative.group(2)]
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise Unprocessable(f"{name} is neither RFC 3339 with an offset nor -N[mhd] within range",
                        errors=[{"pointer": f"/{name}", "detail": "bad time"}])


def filters_from(request_filters: dict[str, Any]) -> Filters:
    return Filters(severity=tuple(request_filters.get("severity", ())),
                   status=tuple(request_filters.get("status", ())),
                   source=tuple(request_filters.get("source", ())),
                   subject=tuple(request_filters.get("subject", ())),
                   labels=tuple(sorted(request_filters.get("labels", {}).items())))


@dataclass(frozen=True, slots=True)
class Accepted:
    export_id: UUID
    status: str


async def create(*, db: Database, settings: Settings, principal: Principal,
                 request: ExportRequest, now: datetime | None = None) -> Accepted:
    now = now or datetime.now(UTC)
    since = pin(request["since"], now, "since")
    until = pin(request.get("until"), now, "until")
    if since >= until:
        raise Unprocessable("since must be before until",
                            errors=[{"pointer": "/since", "detail": "after until"}])
    if until - since > timedelta(days=settings.export_max_days):
        raise Unprocessable(f"the period is longer than {settings.export_max_days} days "
                            "(EXPORT_MAX_DAYS)", limit=settings.export_max_days,
                            errors=[{"pointer": "/since", "detail": "period too long"}])
    for key in request.get("filters", {}).get("labels", {}):
        # (a NUL cannot be stored in jsonb: refused here, not a 500 from the database)
        if not 1 <= len(key) <= 64 or "\x00" in key:
            raise Unprocessable("label keys must be 1-64 characters without NUL",
                                errors=[{"pointer": "/filters/labels", "detail": key[:80]}])
    request_hash = hashlib.sha256(canonical_bytes(request)).hexdigest()
    tenant = principal.tenant
    async with db.tenant(tenant, actor_key=principal.key_id) as conn:
        await export_store.lock_tenant(conn, tenant=tenant)
        running = await export_store.find_active(conn, tenant=tenant, request_hash=request_hash)
        if running is not None:
            return Accepted(running["id"], running["status"])
        if await export_store.count_active(conn, tenant=tenant) >= MAX_ACTIVE:
            raise TooManyExports()
        export_id = uuid.uuid4()
        await export_store.create(conn, tenant=tenant, export_id=export_id,
                                  format=request["format"], since=since, until=until,
                                  filters=dict(request.get("filters", {})), request_hash=request_hash,
                                  created_by=principal.key_id)
    return Accepted(export_id, "queued")


# -- signed URLs --------------------------------------------------------------------


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
class ExportView:
    etag: str
    body: dict[str, Any] | None  # None: not modified


def _view(row: dict[str, Any], tenant: str, secret: bytes, ttl: int,
          file_ttl: int) -> dict[str, Any]:
    stamp = lambda value: rfc3339(value) if value else None  # noqa: E731
    body: dict[str, Any] = {
        "id": str(row["id"]), "status": row["status"], "format": row["format"],
        "since": rfc3339(row["since"]), "until": rfc3339(row["until"]),
        "filters": row["filters"],
        "created_by": str(row["created_by"]) if row["created_by"] else None,
        "created_at": stamp(row["created_at"]), "started_at": stamp(row["started_at"]),
        "finished_at": stamp(row["finished_at"]), "error": row["error"],
        "file_expires_at": None, "download_url": None, "download_expires_at": None,
    }
    if row["status"] in ("succeeded", "expired") and row["finished_at"]:
        body["file_expires_at"] = rfc3339(row["finished_at"] + timedelta(seconds=file_ttl))
    if row["status"] in ("succeeded", "expired") and row["sha256"]:
        body["manifest"] = {"sha256": row["sha256"], "rows": row["rows"], "bytes": row["bytes"],
                            "filters": row["filters"], "created_by": body["created_by"],
                            "created_at": body["created_at"]}
    if row["status"] == "succeeded":
        url, expires = download_url(secret, tenant, row["id"], row["sha256"], ttl)
        body["download_url"] = url
        body["download_expires_at"] = rfc3339(datetime.fromtimestamp(expires, UTC))
    return body


async def get(*, db: Database, settings: Settings, tenant: str, export_id: UUID,
              if_none_match: str | None) -> ExportView:
    async with db.tenant(tenant) as conn:
        row = await export_store.get(conn, tenant=tenant, export_id=export_id)
    if row is None:
        raise NotFound("export not found")
    body = _view(row, tenant, sign_secret(settings), settings.export_url_ttl,
                 settings.export_ttl)
    # the worker changes status outside the tenant's version: the tag is the body's own
    tag = etag(tenant, 0, "export", orjson.dumps(body).decode())
    return ExportView(tag, None if matches(if_none_match, tag) else body)


@dataclass(frozen=True, slots=True)
class ExportList:
    etag: str
    body: dict[str, Any] | None  # None: not modified


async def list_exports(*, db: Database, settings: Settings, tenant: str, limit: int,
                       cursor: str | None, if_none_match: str | None) -> ExportList:
    """Newest first, keyset paged. The worker changes statuses outside the tenant's
    version, so the validator is the page's own content (as for one export)."""
    after = decode_cursor(cursor, LIST_ORDER) if cursor else None
    async with db.tenant(tenant) as conn:
        rows = await export_store.list_page(conn, tenant=tenant, limit=limit + 1, after=after)
    secret = sign_secret(settings)
    items = [_view(r, tenant, secret, settings.export_url_ttl, settings.export_ttl)
             for r in rows[:limit]]
    next_cursor = (encode_cursor(LIST_ORDER, rows[limit - 1]["created_at"], rows[limit - 1]["id"])
                   if len(rows) > limit else None)
    body = {"items": items, "next_cursor": next_cursor}
    tag = etag(tenant, 0, "exports", orjson.dumps(body).decode())
    return ExportList(tag, None if matches(if_none_match, tag) else body)


@dataclass(frozen=True, slots=True)
class Download:
    path: Path
    sha256: str
    size: int
    media_name: str


async def download(*, db: Database, settings: Settings, export_id: UUID, expires: int, sig: str,
                   now: float | None = None) -> Download:
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
    path = settings.exports_path / found["tenant_id"] / found["file_name"]
    if found["status"] != "succeeded" or not path.exists():
        raise Gone("the export file has expired")
    return Download(path, found["sha256"], found["bytes"], found["file_name"])


# -- the job ------------------------------------------------------------------------


class HashingWriter(io.RawIOBase):
    """Counts and hashes the exact bytes that reach the file (the gzip stream)."""

    def __init__(self, target: Any) -> None:
        self.target, self.sha256, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return int(self.target.write(chunk))


class TooManyRows(Exception):
    pass


# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula (or whose
# leading tab/CR it would drop to reveal one) starts with a single quote instead.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_lines(rows: list[tuple[Any, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # The minimal dialect quotes a field with "\n" but not one with a lone "\r", which
    # readers take for a line end: a row holding one is quoted throughout.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for r in rows:
        cells = [csv_cell(v) for v in (
            r[0], rfc3339(r[1]), r[2], r[3], r[4], r[5] or "", r[6], r[7], r[8],
            r[9], r[10], r[11], r[12], "true" if r[13] else "false")]
        carriage = any(isinstance(c, str) and "\r" in c for c in cells)
        (quoted if carriage else writer).writerow(cells)
    return out.getvalue().encode()


async def run(*, db: Database, settings: Settings, tenant: str, export_id: UUID) -> None:
    """The worker's job: idempotent, so a retry after a crash simply starts over."""
    async with db.tenant(tenant) as conn:
        claimed = await export_store.start(conn, tenant=tenant, export_id=export_id)
    if claimed is None:
        return  # already finished (or failed) by an earlier attempt
    folder = settings.exports_path / tenant
    name = f"{export_id}.{claimed['format']}.gz"
    draft = folder / f".{name}.{os.getpid()}.part"
    params = filters_from(claimed["filters"]).sql_params()
    params.update(since=claimed["since"], until=claimed["until"])
    failure = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(f".{name}.*.part"):  # from an attempt whose worker died
            leftover.unlink(missing_ok=True)
        rows, digest, size = await _write(db, tenant, params, claimed["format"], draft,
                                          settings.export_max_rows)
        os.replace(draft, folder / name)  # the complete file, or none at all
    except TooManyRows:
        failure = (f"more than EXPORT_MAX_ROWS ({settings.export_max_rows}) rows match; "
                   "narrow the period or the filters")
    except OSError as exc:
        # the export storage is full or unwritable: retrying in seconds would not help;
        # the export fails now, with the reason, and may be asked for again
        failure = f"the export storage could not be written: {exc.strerror or exc}"
    except BaseException:
        _discard(draft)
        raise
    if failure is not None:
        _discard(draft)
        async with db.tenant(tenant) as conn:
            await export_store.fail(conn, tenant=tenant, export_id=export_id, error=failure)
        return
    async with db.tenant(tenant) as conn:
        await export_store.finish(conn, tenant=tenant, export_id=export_id, rows=rows,
                                  size=size, sha256=digest, file_name=name)


def _discard(draft: Path) -> None:
    try:
        draft.unlink(missing_ok=True)
    except OSError:  # the storage itself is failing; the next attempt removes leftovers
        pass


async def _write(db: Database, tenant: str, params: dict[str, Any], fmt: str, draft: Path,
                 max_rows: int) -> tuple[int, str, int]:
    rows = 0
    with open(draft, "wb") as raw:  # noqa: ASYNC230 - the worker's own file; writes are the job
        hashing = HashingWriter(raw)
        # mtime=0 and no file name: the same rows always give the same gzip bytes
        with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0, filename="",
                           compresslevel=6) as out:
            if fmt == "csv":
                out.write((",".join(CSV_COLUMNS) + "\n").encode())
            async with db.tenant(tenant, pipeline=False) as conn:
                async for batch in export_store.stream_rows(conn, tenant=tenant, fmt=fmt,
                                                            params=params):
                    rows += len(batch)
                    if rows > max_rows:
                        raise TooManyRows()
                    if fmt == "ndjson":
                        out.write(b"".join(bytes(r[0]) + b"\n" for r in batch))
                    else:
                        out.write(_csv_lines(batch))
        raw.flush()
        os.fsync(raw.fileno())
    return rows, hashing.sha256.hexdigest(), hashing.size


async def give_up(*, db: Database, tenant: str, export_id: UUID, reason: str) -> None:
    async with db.tenant(tenant) as conn:
        await export_store.fail(conn, tenant=tenant, export_id=export_id,
                                error=f"the export could not be written: {reason}")


async def expire_files(*, db: Database, settings: Settings, now: datetime | None = None) -> int:
    older_than = (now or datetime.now(UTC)) - timedelta(seconds=settings.export_ttl)
    async with db.system() as conn:
        expired = await export_store.expire(conn, older_than=older_than)
    for tenant, _, file_name in expired:
        if file_name:
            (settings.exports_path / tenant / file_name).unlink(missing_ok=True)
    return len(expired)
