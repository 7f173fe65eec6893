"""Reading reports: filters, keyset cursors, ETags computed without running the list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from app.errors import BadRequest
from app.services import cursors
from app.services.canonical import rfc3339
from app.services.versions import etag, versioned_read
from app.storage import reports as report_store
from app.storage.db import Database


@dataclass(frozen=True, slots=True)
class Filters:
    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    subject: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # AND; from label=key:value
    since: datetime | None = None
    until: datetime | None = None

    def sql_params(self) -> dict[str, Any]:
        labels: dict[str, str] | None = None
        impossible = False
        if self.labels:
            labels = {}
            for key, value in self.labels:
                if labels.get(key, value) != value:
                    impossible = True  # key:a AND key:b can never both hold
                labels[key] = value
        return {
            "severity": list(self.severity) or None,
            "status": list(self.status) or None,
            "source": list(self.source) or None,
            # an impossible label set becomes a subject filter that matches nothing
            "subject": [] if impossible else (list(self.subject) or None),
            "labels": orjson.dumps(labels).decode() if labels else None,
            "since": self.since,
            "until": self.until,
        }

    def key(self) -> tuple[Any, ...]:
        return (sorted(self.severity), sorted(self.status), sorted(self.source),
                sorted(self.subject), sorted(self.labels),
                self.since.isoformat() if self.since else None,
                self.until.isoformat() if self.until else None)


def parse_time(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise BadRequest(f"{name} needs a UTC offset (e.g. Z)", errors=[
                {"pointer": name, "detail": "missing offset"}])
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name} is not an RFC 3339 date-time in range", errors=[
            {"pointer": name, "detail": "expected e.g. 2026-11-21T02:00:00Z"}]) from None


def make_filters(*, severity: list[str] | None = None, status: list[str] | None = None,
                 source: list[str] | None = None, subject: list[str] | None = None,
                 label: list[str] | None = None, since: str | None = None,
                 until: str | None = None) -> Filters:
    pairs = []
    for item in label or []:
        key, _, value = item.partition(":")
        pairs.append((key, value))
    filters = Filters(tuple(severity or ()), tuple(status or ()), tuple(source or ()),
                      tuple(subject or ()), tuple(pairs), parse_time(since, "since"),
                      parse_time(until, "until"))
    if filters.since and filters.until and filters.since > filters.until:
        raise BadRequest("since is after until")
    return filters


# -- cursors ------------------------------------------------------------------------


# One letter per sort order: a cursor belongs to the order it was made in.
_ORDER = {"received_at": "r", "-received_at": "R", "observed_at": "o", "-observed_at": "O",
          "-created_at": "C"}  # (the last: GET /exports, newest first)


def encode_cursor(sort: str, moment: datetime, report_id: UUID) -> str:
    return cursors.encode(moment, report_id, _ORDER[sort])


def decode_cursor(cursor: str, sort: str) -> tuple[datetime, UUID]:
    moment, report_id = cursors.decode(cursor, order=_ORDER[sort])
    assert isinstance(report_id, UUID)
    return moment, report_id


# -- use cases ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    etag: str
    items: bytes | None  # a JSON array of summaries; None: not modified
    next_cursor: str | None


async def list_reports(*, db: Database, tenant: str, filters: Filters, sort: str, limit: int,
                       cursor: str | None, if_none_match: str | None) -> Page:
    descending = sort.startswith("-")
    after = decode_cursor(cursor, sort) if cursor else None
    params = filters.sql_params()
    params.update(page_size=limit, after_time=after[0] if after else None,
                  after_id=after[1] if after else None)
    tag, found = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda v: etag(tenant, v, "reports", filters.key(), sort, limit, cursor),
        read=report_store.list_page_json(tenant=tenant, params=params, sort=sort.lstrip("-"),
                                         descending=descending))
    if found is None:
        return Page(tag, None, None)
    next_cursor = encode_cursor(sort, *found.last) if found.more and found.last else None
    return Page(tag, found.items, next_cursor)


def signature_view(found: dict[str, Any]) -> dict[str, Any]:
    """Who signed, with which key, when (from the jsonb the read statement builds)."""
    return {"signing_key_id": found["signing_key_id"],
            "signer": {"key_id": found["signer_key_id"], "role": found["signer_role"]},
            "signed_at": rfc3339(datetime.fromisoformat(found["signed_at"]))}


@dataclass(frozen=True, slots=True)
class ReportDocument:
    etag: str
    body: bytes | None  # None: not modified


async def get_report(*, db: Database, tenant: str, report_id: UUID,
                     if_none_match: str | None) -> ReportDocument:
    tag, found = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda version: etag(tenant, version, "report", str(report_id)),
        read=report_store.get_document(tenant=tenant, report_id=report_id),
        missing="report not found")
    if found is None:
        return ReportDocument(tag, None)
    canonical, digest, signed, signature = found
    document = orjson.loads(canonical)
    document["content_sha256"] = digest
    document["signed"] = signed
    if signature:
        document["signature"] = signature_view(signature)
    return ReportDocument(tag, orjson.dumps(document))
