"""Offline verification of an evidence bundle (`qc-collector verify`): every check a
verifier needs, each saying why it failed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.services.canonical import canonical_bytes, derive
from app.services.evidence import signing
from app.services.evidence.bundles import REQUIRED


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
