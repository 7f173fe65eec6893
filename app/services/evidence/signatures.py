"""Signing a report: a DSSE envelope over an in-toto Statement of its canonical bytes,
stored once (a second request returns the first signature) with its audit entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from app.errors import NotFound
from app.services.access.principal import Principal
from app.services.canonical import rfc3339
from app.services.evidence import signing
from app.storage import reports as report_store
from app.storage import signatures as signature_store
from app.storage.db import Database


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    created: bool
    body: dict[str, Any]


def _record(report_id: UUID, content_sha256: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "report_id": str(report_id),
        "content_sha256": content_sha256,
        "signing_key_id": row["signing_key_id"],
        "signer": {"key_id": str(row["signer_key_id"]), "role": row["signer_role"]},
        "signed_at": rfc3339(row["signed_at"]),
        "envelope": orjson.loads(row["envelope"]),
    }


async def sign(*, db: Database, keys: signing.SigningKeys, principal: Principal,
               report_id: UUID) -> SignatureRecord:
    tenant = principal.tenant
    async with db.tenant(tenant, actor_key=principal.key_id) as conn:
        found = await report_store.get(conn, tenant=tenant, report_id=report_id)
        if found is None:
            raise NotFound("report not found")
        _, content_sha256, _ = found
        existing = await signature_store.get(conn, tenant=tenant, report_id=report_id)
        if existing is not None:
            return SignatureRecord(False, _record(report_id, content_sha256, existing))
        signed_at = datetime.now(UTC)
        row: dict[str, Any] = {"signing_key_id": keys.active_id, "signer_key_id": principal.key_id,
               "signer_role": principal.role, "signed_at": signed_at}
        row["envelope"] = keys.envelope(signing.statement(
            report_id=str(report_id), tenant=tenant, content_sha256=content_sha256,
            signer_key_id=str(principal.key_id), signer_role=principal.role,
            signed_at=rfc3339(signed_at), signing_key_id=keys.active_id))
        if not await signature_store.insert(conn, tenant=tenant, report_id=report_id, **row):
            # a concurrent request signed first: answer with its signature
            winner = await signature_store.get(conn, tenant=tenant, report_id=report_id)
            assert winner is not None
            return SignatureRecord(False, _record(report_id, content_sha256, winner))
        await signature_store.mark_report_signed(conn, tenant=tenant, report_id=report_id)
        await report_store.bump_version(conn, tenant=tenant)
    return SignatureRecord(True, _record(report_id, content_sha256, row))


# -- the bundle ---------------------------------------------------------------------
