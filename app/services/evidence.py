"""Evidence: signing a report, the deterministic bundle, and its offline verification.

The bundle holds report.json (the canonical bytes that content_sha256 covers),
signature.dsse.json when signed, VERIFY.md, and manifest.json listing the sha256 and
size of every other file. Zip entries carry fixed dates and modes and are stored
uncompressed, so the same report and signature always give the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from app.errors import NotFound
from app.services import signing
from app.services.access.principal import Principal
from app.services.canonical import canonical_bytes, derive, rfc3339
from app.services.reports import etag, matches
from app.storage import reports as report_store
from app.storage import signatures as signature_store
from app.storage.db import Database

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
REQUIRED = ("manifest.json", "report.json", "VERIFY.md")


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


def verify_md(report_id: str, signed: bool) -> bytes:
    signature_steps = """
## 3. The signature (signature.dsse.json)

A DSSE envelope over an in-toto Statement v1. Its subject is `report.json` with the
sha256 above; the signature covers the DSSE pre-authentication encoding
`"DSSEv1" SP len(payloadType) SP payloadType SP len(payload) SP payload`.
Fetch the public keys (JWKS, Ed25519) from the service's `GET /signing-keys` and match
the envelope's `keyid` with a key's `kid`.
""" if signed else """
## 3. The signature

This report was not signed when the bundle was made.
"""
    return f"""# Verifying this evidence bundle

Report `{report_id}`.

## With the QC Collector CLI

    qc-collector verify bundle.zip --jwks https://<collector>/signing-keys

It checks everything below and exits 0 only when all of it holds.

## 1. The files (manifest.json)

    unzip bundle.zip -d bundle && cd bundle
    sha256sum report.json VERIFY.md{" signature.dsse.json" if signed else ""}
    cat manifest.json    # each path with its sha256 and size must match

## 2. The report (report.json)

`report.json` is the report in RFC 8785 canonical JSON; its sha256 is the report's
`content_sha256` (and the signature's subject digest):

    sha256sum report.json
{signature_steps}""".encode()


def build_bundle(report_id: str, canonical: bytes, envelope: bytes | None) -> bytes:
    files = [("report.json", canonical)]
    if envelope is not None:
        files.append(("signature.dsse.json", envelope))
    files.append(("VERIFY.md", verify_md(report_id, envelope is not None)))
    manifest = {"files": [{"path": path, "sha256": hashlib.sha256(data).hexdigest(),
                           "size": len(data)} for path, data in files]}
    files.append(("manifest.json", canonical_bytes(manifest)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=ZIP_DATE)
            info.create_system = 3  # unix, so the mode below is meaningful everywhere
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Bundle:
    etag: str
    data: bytes | None  # None: not modified


async def bundle(*, db: Database, tenant: str, report_id: UUID, if_none_match: str | None) -> Bundle:
    async with db.system() as conn:
        version = await report_store.tenant_version(conn, tenant=tenant)
    tag = etag(tenant, version, "bundle", str(report_id))
    if matches(if_none_match, tag):
        return Bundle(tag, None)
    async with db.tenant(tenant, read=True) as conn:
        found = await report_store.get(conn, tenant=tenant, report_id=report_id)
        signature = await signature_store.get(conn, tenant=tenant, report_id=report_id)
    if found is None:
        raise NotFound("report not found")
    envelope = bytes(signature["envelope"]) if signature else None
    return Bundle(tag, build_bundle(str(report_id), found[0], envelope))


# -- offline verification -----------------------------------------------------------


@dataclass
class Verification:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append((name, ok, detail))
        return ok


def verify_bundle(data: bytes, jwks: dict[str, Any] | None) -> Verification:
    """Every check a verifier needs, offline; a failed check says why."""
    result = Verification()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        result.add("zip", False, f"not a readable zip: {exc}")
        return result
    missing = [name for name in REQUIRED if name not in files]
    if not result.add("files present", not missing,
                      f"missing {', '.join(missing)}" if missing else ", ".join(sorted(files))):
        return result
    if not _check_manifest(result, files):
        return result
    report = _check_report(result, files["report.json"])
    if "signature.dsse.json" in files:
        _check_signature(result, files["signature.dsse.json"], files["report.json"], report, jwks)
    else:
        result.add("signature", True, "bundle is unsigned (report.json integrity only)")
    return result


def _check_manifest(result: Verification, files: dict[str, bytes]) -> bool:
    try:
        entries = orjson.loads(files["manifest.json"])["files"]
        listed = {e["path"]: e for e in entries}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return result.add("manifest", False, "manifest.json is not {\"files\": [...]}")
    others = set(files) - {"manifest.json"}
    if set(listed) != others:
        return result.add("manifest", False, "manifest lists "
                          f"{sorted(listed)} but the zip holds {sorted(others)}")
    for path, entry in sorted(listed.items()):
        digest = hashlib.sha256(files[path]).hexdigest()
        if digest != entry.get("sha256") or len(files[path]) != entry.get("size"):
            return result.add("manifest", False, f"{path}: sha256/size differ from the manifest")
    return result.add("manifest", True, f"{len(listed)} file(s) match their sha256 and size")


def _check_report(result: Verification, raw: bytes) -> dict[str, Any] | None:
    try:
        report = orjson.loads(raw)
    except orjson.JSONDecodeError:
        result.add("report.json", False, "not JSON")
        return None
    if not result.add("canonical form", canonical_bytes(report) == raw,
                      "RFC 8785 bytes" if canonical_bytes(report) == raw
                      else "report.json is not in RFC 8785 canonical form"):
        return report
    try:
        status, severity, counts = derive(report["checks"])
        consistent = (status, severity, counts) == (report["status"], report["severity"],
                                                   report["counts"])
    except (KeyError, TypeError):
        consistent = False
    result.add("derived fields", consistent,
               "status, severity and counts follow from the checks" if consistent
               else "status/severity/counts do not follow from the checks")
    result.add("content sha256", True, hashlib.sha256(raw).hexdigest())
    return report


def _check_signature(result: Verification, raw: bytes, report_bytes: bytes,
                     report: dict[str, Any] | None, jwks: dict[str, Any] | None) -> None:
    try:
        envelope = orjson.loads(raw)
        payload = base64.b64decode(envelope["payload"], validate=True)
        statement = orjson.loads(payload)
        subject = statement["subject"][0]
        keyids = [s["keyid"] for s in envelope["signatures"]]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, binascii.Error):
        result.add("signature", False, "signature.dsse.json is not a DSSE envelope")
        return
    digest = hashlib.sha256(report_bytes).hexdigest()
    result.add("statement", envelope.get("payloadType") == signing.PAYLOAD_TYPE
               and statement.get("_type") == signing.STATEMENT_TYPE
               and statement.get("predicateType") == signing.PREDICATE_TYPE,
               "in-toto Statement v1, QC Collector predicate")
    result.add("subject", subject.get("name") == "report.json"
               and subject.get("digest", {}).get("sha256") == digest
               and (report is None or statement.get("predicate", {}).get("report_id")
                    == report.get("id")),
               "the statement's subject is this report.json" if subject.get("digest", {})
               .get("sha256") == digest else "the statement signs another report.json")
    if jwks is None:
        result.add("signature", False, "the bundle is signed: pass --jwks FILE|URL to check it")
        return
    known = {k.get("kid"): k for k in jwks.get("keys", [])}
    for keyid in keyids:
        entry = known.get(keyid)
        if entry is None:
            continue
        try:
            valid = signing.verify_envelope(envelope, signing.public_key_from_jwk(entry))
        except (ValueError, binascii.Error, KeyError):
            valid = False
        note = " (a retired key: signed before a rotation)" if entry.get("status") == "retired" else ""
        result.add("signature", valid, f"Ed25519 by {keyid}{note}" if valid
                   else f"signature does not verify with key {keyid}")
        return
    result.add("signature", False, f"signed by unknown key {', '.join(keyids)}: not in the JWKS")
