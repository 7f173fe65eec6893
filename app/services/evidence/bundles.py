"""The evidence bundle: a deterministic zip of one report.

It holds report.json (the canonical bytes that content_sha256 covers),
signature.dsse.json when signed, VERIFY.md, and manifest.json listing the sha256 and
size of every other file. Zip entries carry fixed dates and modes and are stored
uncompressed, so the same report and signature always give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from uuid import UUID

from app.services.canonical import canonical_bytes
from app.services.versions import etag, versioned_read
from app.storage import reports as report_store
from app.storage.db import Database

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
REQUIRED = ("manifest.json", "report.json", "VERIFY.md")


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
    tag, found = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda version: etag(tenant, version, "bundle", str(report_id)),
        read=report_store.bundle_source(tenant=tenant, report_id=report_id),
        missing="report not found")
    if found is None:
        return Bundle(tag, None)
    canonical, envelope = found
    return Bundle(tag, build_bundle(str(report_id), canonical, envelope))
