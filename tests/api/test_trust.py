"""Signing, bundles, the JWKS, key management and the audit log over HTTP."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
import uuid
import zipfile

import psycopg
import pytest

from tests.factories import headers, new_key, report
from tests.waiting import refusal_streak


@pytest.fixture
def stored(http):
    r = http.post("/ingest/qc", json=report(), headers=headers(role="operator"))
    assert r.status_code == 201
    return r.json()


def test_sign_once_then_the_same_envelope(http, stored):
    first = http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["content_sha256"] == stored["content_sha256"]
    assert body["envelope"]["payloadType"] == "application/vnd.in-toto+json"
    again = http.post(f"/reports/{stored['id']}/sign", headers=headers(role="admin"))
    assert again.status_code == 200 and again.json() == body
    jwks = http.get("/signing-keys").json()
    assert body["signing_key_id"] in {k["kid"] for k in jwks["keys"]}
    assert http.get(f"/reports/{stored['id']}", headers=headers()).json()["signed"] is True


def test_signing_changes_list_etags(http, stored):
    params = {"subject": stored["subject"]}
    before = http.get("/reports", params=params, headers=headers())
    http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    after = http.get("/reports", params=params,
                     headers=headers(**{"If-None-Match": before.headers["etag"]}))
    assert after.status_code == 200 and after.json()["items"][0]["signed"] is True


def test_bundle_is_byte_identical_and_verifies_with_the_cli(http, server, stored, tmp_path):
    http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    one = http.get(f"/reports/{stored['id']}/bundle.zip", headers=headers(role="viewer"))
    two = http.get(f"/reports/{stored['id']}/bundle.zip", headers=headers(role="viewer"))
    assert one.status_code == 200 and one.headers["content-type"] == "application/zip"
    assert one.content == two.content
    assert http.get(f"/reports/{stored['id']}/bundle.zip",
                    headers=headers(**{"If-None-Match": one.headers["etag"]})).status_code == 304
    with zipfile.ZipFile(io.BytesIO(one.content)) as archive:
        names = archive.namelist()
        report_json = archive.read("report.json")
    assert set(names) == {"report.json", "signature.dsse.json", "VERIFY.md", "manifest.json"}
    assert hashlib.sha256(report_json).hexdigest() == stored["content_sha256"]

    path = tmp_path / "bundle.zip"
    path.write_bytes(one.content)
    ok = subprocess.run([sys.executable, "-m", "app.cli", "verify", str(path), "--jwks",
                         f"{server.url}/signing-keys"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "bundle verified" in ok.stdout and "FAIL" not in ok.stdout

    tampered = bytearray(one.content)
    offset = one.content.index(b'"subject":') + 12
    tampered[offset] ^= 0x01  # one byte inside report.json
    path.write_bytes(bytes(tampered))
    bad = subprocess.run([sys.executable, "-m", "app.cli", "verify", str(path), "--jwks",
                          f"{server.url}/signing-keys"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout and "NOT verified" in bad.stdout


def test_unsigned_bundle_has_no_signature_file(http, stored):
    r = http.get(f"/reports/{stored['id']}/bundle.zip", headers=headers())
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert "signature.dsse.json" not in archive.namelist()


def test_admin_keys_lifecycle_and_revocation_within_5_seconds(http):
    made = http.post("/admin/keys", json=new_key("ci-bot", "operator"),
                     headers=headers(role="admin"))
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["secret"].startswith("qcc_") and made.headers["location"] == f"/admin/keys/{key['id']}"
    assert http.post("/ingest/qc", json=report(),
                     headers={"X-Api-Key": key["secret"]}).status_code == 201
    # last use is stamped in the background (never slowing a request): poll for it
    for _ in range(40):
        listed = http.get("/admin/keys", headers=headers(role="admin"))
        mine = [k for k in listed.json()["items"] if k["id"] == key["id"]]
        if mine and mine[0]["last_used_at"]:
            break
        time.sleep(0.05)
    assert key["secret"] not in listed.text
    assert mine and mine[0]["role"] == "operator" and mine[0]["last_used_at"] is not None
    assert http.delete(f"/admin/keys/{key['id']}", headers=headers("globex", "admin")).status_code == 404
    assert http.delete(f"/admin/keys/{key['id']}", headers=headers(role="admin")).status_code == 204
    revoked_at = time.monotonic()
    streak = refusal_streak(http, key["secret"], since=revoked_at)
    assert streak == 6 and time.monotonic() - revoked_at <= 5.0
    assert http.delete(f"/admin/keys/{key['id']}", headers=headers(role="admin")).status_code == 404


def test_audit_log_shows_sign_and_key_events_with_actor_and_time(http, stored):
    made = http.post("/admin/keys", json=new_key(f"audit-{uuid.uuid4().hex[:6]}"),
                     headers=headers(role="admin")).json()
    http.delete(f"/admin/keys/{made['id']}", headers=headers(role="admin"))
    http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    events = http.get("/audit", params={"limit": 500}, headers=headers(role="auditor")).json()["items"]
    by_target = {(e["action"], e["target"]["id"]): e for e in events}
    sign = by_target[("report.sign", stored["id"])]
    create = by_target[("key.create", made["id"])]
    revoke = by_target[("key.revoke", made["id"])]
    for event in (sign, create, revoke):
        assert event["actor"]["key_id"] and event["actor"]["label"] == "api"
        assert event["at"].endswith("Z")
    admin_key_id = create["actor"]["key_id"]
    assert revoke["actor"]["key_id"] == admin_key_id != sign["actor"]["key_id"]
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    only_signs = http.get("/audit", params={"action": "report.sign"}, headers=headers()).json()
    assert {e["action"] for e in only_signs["items"]} == {"report.sign"}
    by_actor = http.get("/audit", params={"actor": admin_key_id, "limit": 500}, headers=headers()).json()
    assert {e["actor"]["key_id"] for e in by_actor["items"]} == {admin_key_id}
    assert "secret" not in str(events)


def test_audit_pages_and_etag(http, stored):
    first = http.get("/audit", params={"limit": 2}, headers=headers(role="auditor"))
    assert first.status_code == 200 and first.json()["next_cursor"]
    second = http.get("/audit", params={"limit": 2, "cursor": first.json()["next_cursor"]},
                      headers=headers(role="auditor"))
    ids = [e["id"] for e in first.json()["items"] + second.json()["items"]]
    assert len(set(ids)) == 4 and ids == sorted(ids, reverse=True)
    tag = first.headers["etag"]
    assert http.get("/audit", params={"limit": 2},
                    headers=headers(role="auditor", **{"If-None-Match": tag})).status_code == 304
    http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    assert http.get("/audit", params={"limit": 2},
                    headers=headers(role="auditor", **{"If-None-Match": tag})).status_code == 200
    assert http.get("/audit", params={"cursor": "junk"}, headers=headers()).status_code == 400
    assert http.get("/audit", params={"actor": "not-a-uuid"}, headers=headers()).status_code == 400


def test_audit_log_is_append_only_even_for_its_owner(http, database, stored):
    http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    with psycopg.connect(database.app_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.tenant', 'acme', false)")
        for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                          "INSERT INTO audit_log (tenant_id, action, actor, target_type, target_id)"
                          " VALUES ('acme', 'forged', 'x', 'x', 'x')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE audit_log")
