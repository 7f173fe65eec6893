"""Bundles and their offline verification: every kind of tampering is caught."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.config import ConfigError, Settings
from app.services.canonical import canonical_bytes, derive
from app.services.evidence import signing
from app.services.evidence.bundles import build_bundle
from app.services.evidence.verification import verify_bundle

REPORT_ID = "01a20073-fc37-7660-843e-4f424f12b07b"


def canonical_report(**overrides) -> bytes:
    checks = [{"rule": "r", "status": "fail", "severity": "block", "observed": 0.5}]
    status, severity, counts = derive(checks)
    document = {"source": "s", "subject": "x", "observed_at": "2026-11-21T00:00:00Z",
                "labels": {}, "checks": checks, "id": REPORT_ID, "tenant": "acme",
                "received_at": "2026-11-21T00:00:01.000000Z", "status": status,
                "severity": severity, "counts": counts, **overrides}
    return canonical_bytes(document)


def signed_bundle(keys: signing.SigningKeys, report: bytes | None = None) -> bytes:
    report = report or canonical_report()
    envelope = keys.envelope(signing.statement(
        report_id=REPORT_ID, tenant="acme", content_sha256=hashlib.sha256(report).hexdigest(),
        signer_key_id="5b0e4c8a-3f0d-4c4e-9a55-0b1c2d3e4f50", signer_role="auditor",
        signed_at="2026-11-21T00:00:02.000000Z", signing_key_id=keys.active_id))
    return build_bundle(REPORT_ID, report, envelope)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist()}


def repack(files: dict[str, bytes], *, fix_manifest: bool = False) -> bytes:
    files = dict(files)
    if fix_manifest:
        files["manifest.json"] = canonical_bytes({"files": [
            {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for p, d in files.items() if p != "manifest.json"]})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def keys() -> signing.SigningKeys:
    return signing.SigningKeys(Ed25519PrivateKey.generate())


def failed(result) -> dict[str, str]:
    return {name: detail for name, ok, detail in result.checks if not ok}


def test_a_signed_bundle_verifies_and_is_deterministic(keys):
    data = signed_bundle(keys)
    assert data == signed_bundle(keys)  # Ed25519 is deterministic; zip entries are fixed
    result = verify_bundle(data, keys.jwks())
    assert result.ok, result.checks
    assert set(members(data)) == {"report.json", "signature.dsse.json", "VERIFY.md",
                                  "manifest.json"}
    manifest = orjson.loads(members(data)["manifest.json"])
    assert [f["path"] for f in manifest["files"]] == ["report.json", "signature.dsse.json",
                                                      "VERIFY.md"]


@pytest.mark.parametrize("name", ["report.json", "signature.dsse.json", "VERIFY.md",
                                  "manifest.json"])
def test_one_changed_byte_in_any_file_fails(keys, name):
    files = members(signed_bundle(keys))
    data = bytearray(files[name])
    data[len(data) // 2] ^= 0x01
    files[name] = bytes(data)
    result = verify_bundle(repack(files), keys.jwks())
    assert not result.ok
    assert failed(result), result.checks


def test_a_renamed_or_missing_file_fails(keys):
    files = members(signed_bundle(keys))
    renamed = {("report2.json" if k == "report.json" else k): v for k, v in files.items()}
    assert "missing report.json" in failed(verify_bundle(repack(renamed), keys.jwks()))["files present"]
    without_signature = {k: v for k, v in files.items() if k != "signature.dsse.json"}
    assert "manifest" in failed(verify_bundle(repack(without_signature), keys.jwks()))
    extra = {**files, "notes.txt": b"hello"}
    assert "manifest" in failed(verify_bundle(repack(extra), keys.jwks()))


def test_a_changed_report_with_a_fixed_manifest_no_longer_matches_the_signature(keys):
    files = members(signed_bundle(keys))
    files["report.json"] = canonical_report(subject="forged")
    result = verify_bundle(repack(files, fix_manifest=True), keys.jwks())
    assert "subject" in failed(result)


def test_inconsistent_derived_fields_fail(keys):
    files = members(signed_bundle(keys))
    files["report.json"] = canonical_report(status="pass")
    assert "derived fields" in failed(verify_bundle(repack(files, fix_manifest=True), None))


def test_a_foreign_signature_fails(keys):
    stranger = signing.SigningKeys(Ed25519PrivateKey.generate())
    files = members(signed_bundle(keys))
    files["signature.dsse.json"] = members(signed_bundle(stranger))["signature.dsse.json"]
    result = verify_bundle(repack(files, fix_manifest=True), keys.jwks())
    assert "unknown key" in failed(result)["signature"]
    # the stranger's key id, but a JWKS entry with our key under it: does not verify
    jwks = {"keys": [{**keys.jwks()["keys"][0], "kid": stranger.active_id}]}
    assert "does not verify" in failed(verify_bundle(repack(files, fix_manifest=True), jwks))["signature"]


def test_a_retired_key_still_verifies_and_a_dropped_one_does_not():
    old = signing.SigningKeys(Ed25519PrivateKey.generate())
    data = signed_bundle(old)
    rotated = signing.SigningKeys(Ed25519PrivateKey.generate(), retired=(old.active.public_key(),))
    result = verify_bundle(data, rotated.jwks())
    assert result.ok and "retired" in dict((n, d) for n, _, d in result.checks)["signature"]
    dropped = signing.SigningKeys(rotated.active)
    assert "unknown key" in failed(verify_bundle(data, dropped.jwks()))["signature"]


def test_a_signed_bundle_needs_a_jwks_and_an_unsigned_one_verifies_alone(keys):
    assert "--jwks" in failed(verify_bundle(signed_bundle(keys), None))["signature"]
    unsigned = build_bundle(REPORT_ID, canonical_report(), None)
    assert verify_bundle(unsigned, None).ok
    assert not verify_bundle(b"not a zip", None).ok


def test_jwks_ids_are_rfc7638_thumbprints(keys):
    [entry] = keys.jwks()["keys"]
    members_json = canonical_bytes({"crv": "Ed25519", "kty": "OKP", "x": entry["x"]})
    assert entry["kid"] == signing.b64url(hashlib.sha256(members_json).digest())
    assert entry["status"] == "active" and entry["alg"] == "EdDSA"


def test_key_loading_rules(tmp_path: Path):
    base = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match="required"):
        signing.load(base.model_copy(update={"environment": "production"}))
    generated = signing.load(base)
    assert (tmp_path / "signing-key.pem").exists()
    assert signing.load(base).active_id == generated.active_id  # stable across restarts
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    retired_pem = generated.active.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    keys = signing.load(base.model_copy(update={
        "environment": "production", "signing_key": pem, "signing_keys_retired": retired_pem}))
    assert [k["status"] for k in keys.jwks()["keys"]] == ["active", "retired"]
    with pytest.raises(ConfigError):
        signing.load(base.model_copy(update={"signing_key": "not a pem"}))


def test_export_url_key_rules(tmp_path: Path):
    from app.services.exports.signed_urls import sign_secret

    with pytest.raises(ConfigError, match="EXPORT_SIGN_SECRET"):
        sign_secret(Settings(data_dir=tmp_path, environment="production"))
    generated = sign_secret(Settings(data_dir=tmp_path))
    assert len(generated) == 64 and (tmp_path / "export-sign-secret").exists()
    given = Settings(data_dir=tmp_path, environment="production", export_sign_secret="k" * 40)
    assert sign_secret(given) == b"k" * 40
