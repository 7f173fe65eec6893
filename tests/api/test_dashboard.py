"""The dashboard's aggregates and the exports list over HTTP: the numbers the console
draws come from the server (exact for seeded data), every read has an ETag and answers
304, the roles are the contract's, and one tenant never sees another's numbers.

A fresh tenant (its own keys on a server of this module) makes every count exact."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import report
from tools import liveserver
from tools.liveserver import TENANTS, key_for
from tools.liveserver import test_api_keys as env_api_keys

FAIL_BLOCK = [{"rule": "r", "status": "fail", "severity": "block"}]
FAIL_WARN = [{"rule": "r", "status": "fail", "severity": "warn"}]
PASS = [{"rule": "r", "status": "pass", "severity": "info"}]
READ_OPS = ("/dashboard/top", "/dashboard/pass-rates", "/dashboard/count")


@pytest.fixture(scope="module")
def dash(database: Any, worker: Any, server: Any,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tenant = f"dash{uuid.uuid4().hex[:8]}"
    other = f"dash{uuid.uuid4().hex[:8]}"
    # its own run dir (metrics files, secrets); the export files are those the session's
    # worker writes
    live = liveserver.start_server(
        database, workers=1, run_dir=tmp_path_factory.mktemp("dashboard"),
        env={"API_KEYS": env_api_keys((*TENANTS, tenant, other)), "VALIDATE_RESPONSES": "true",
             "EXPORT_DIR": str(server.log_path.parent / "exports")})
    with httpx.Client(base_url=live.url, timeout=30) as http:
        # tenant: api 5 fail/block + 2 fail/warn + 3 pass; web 1 fail/block + 1 pass;
        # db 4 pass. subjects: orders 4 failing, others one each.
        bodies = ([report(source="api", subject="orders", checks=FAIL_BLOCK) for _ in range(4)]
                  + [report(source="api", checks=FAIL_BLOCK)]
                  + [report(source="api", checks=FAIL_WARN) for _ in range(2)]
                  + [report(source="api", checks=PASS) for _ in range(3)]
                  + [report(source="web", checks=FAIL_BLOCK), report(source="web", checks=PASS)]
                  + [report(source="db", checks=PASS) for _ in range(4)])
        r = http.post("/ingest/qc/batch", json={"reports": bodies}, headers=key(tenant, "operator"))
        assert r.status_code == 201, r.text
        # the other tenant fails a lot on a source of the same name
        r = http.post("/ingest/qc/batch", json={"reports": [
            report(source="api", checks=FAIL_BLOCK) for _ in range(9)]},
            headers=key(other, "operator"))
        assert r.status_code == 201, r.text
        yield {"http": http, "tenant": tenant, "other": other}
    live.stop()


def key(tenant: str, role: str, **extra: str) -> dict[str, str]:
    return {"X-Api-Key": key_for(tenant, role), **extra}


def test_top_failing_sources_come_from_the_rollup_with_exact_counts(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    r = http.get("/dashboard/top", params={"by": "source"}, headers=key(tenant, "viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["by"] == "source"
    assert body["since"].endswith(":00:00.000000Z") and body["until"].endswith(":00:00.000000Z")
    rows = [(i["key"], i["total"], i["failing"], i["blocking"]) for i in body["items"]]
    # most failing first; a source without failures ("db") is not listed
    assert rows == [("api", 10, 7, 5), ("web", 2, 1, 1)]
    hour = body["items"][0]["first_failure_hour"]
    assert hour == body["items"][0]["last_failure_hour"] and hour.endswith(":00:00.000000Z")


def test_top_failing_subjects_and_limit(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    body = http.get("/dashboard/top", params={"by": "subject", "limit": 1},
                    headers=key(tenant, "auditor")).json()
    assert [(i["key"], i["failing"], i["blocking"]) for i in body["items"]] == [("orders", 4, 4)]


def test_pass_rates_per_source_lowest_first(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    body = http.get("/dashboard/pass-rates", headers=key(tenant, "operator")).json()
    assert [(i["source"], i["total"], i["passing"], i["pass_rate"]) for i in body["items"]] == [
        ("api", 10, 3, 0.3), ("web", 2, 1, 0.5), ("db", 4, 4, 1.0)]


def test_count_is_exact_below_the_cap_and_capped_above(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    count = lambda **params: http.get("/dashboard/count", params=params,  # noqa: E731
                                      headers=key(tenant, "viewer")).json()
    assert count() == {"count": 16, "capped": False, "cap": 500}
    assert count(status="fail", source="api") == {"count": 7, "capped": False, "cap": 500}
    assert count(severity=["block", "warn"], source=["web", "db"])["count"] == 1
    assert count(subject="orders", label="env:prod")["count"] == 4
    # over the cap: a tenant with 501 reports of one source
    big = f"cap-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        r = http.post("/ingest/qc/batch", json={"reports": [
            report(source=big, checks=PASS) for _ in range(251)]},
            headers=key(dash["other"], "operator"))
        assert r.status_code == 201
    capped = http.get("/dashboard/count", params={"source": big},
                      headers=key(dash["other"], "viewer")).json()
    assert capped == {"count": 500, "capped": True, "cap": 500}


def test_every_dashboard_read_has_an_etag_and_answers_304_until_a_change(
        dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    for path in READ_OPS:
        first = http.get(path, headers=key(tenant, "viewer"))
        tag = first.headers["etag"]
        again = http.get(path, headers=key(tenant, "viewer", **{"If-None-Match": tag}))
        assert again.status_code == 304, path
        assert again.headers["etag"] == tag and again.content == b""
    tags = {p: http.get(p, headers=key(tenant, "viewer")).headers["etag"] for p in READ_OPS}
    r = http.post("/ingest/qc", json=report(source="web", checks=FAIL_WARN),
                  headers=key(tenant, "operator"))
    assert r.status_code == 201
    for path, tag in tags.items():
        after = http.get(path, headers=key(tenant, "viewer", **{"If-None-Match": tag}))
        assert after.status_code == 200, path  # the ingest changed what it counts
    top = http.get("/dashboard/top", headers=key(tenant, "viewer")).json()
    assert [(i["key"], i["failing"]) for i in top["items"]] == [("api", 7), ("web", 2)]


def test_tenants_see_only_their_own_numbers(dash: dict[str, Any]) -> None:
    http = dash["http"]
    theirs = http.get("/dashboard/top", headers=key(dash["other"], "viewer")).json()
    assert [(i["key"], i["failing"]) for i in theirs["items"]] == [("api", 9)]
    # X-Tenant naming the other tenant is refused, not answered
    r = http.get("/dashboard/top", headers=key(dash["tenant"], "viewer", **{"X-Tenant": dash["other"]}))
    assert r.status_code == 403


def test_bad_periods_are_400_problems(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    for params in ({"since": "2020-01-01T00:00:00Z"},  # longer than 92 days
                   {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                   {"since": "2026-01-01T00:00:00"},  # no offset
                   {"by": "rule"}, {"limit": 0}, {"limit": 51}):
        r = http.get("/dashboard/top", params=params, headers=key(tenant, "viewer"))
        assert r.status_code == 400, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_exports_list_is_keyset_paged_newest_first_with_etag(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    made = []
    for since in ("-1h", "-2h", "-3h"):
        r = http.post("/exports", json={"format": "csv", "since": since},
                      headers=key(tenant, "auditor"))
        assert r.status_code == 202, r.text
        made.append(r.json()["id"])
        wait_done(http, tenant, r.json()["id"])  # at most two may be running at once
    first = http.get("/exports", params={"limit": 2}, headers=key(tenant, "admin"))
    assert first.status_code == 200, first.text
    page = first.json()
    assert [i["id"] for i in page["items"]] == made[::-1][:2]
    assert page["next_cursor"] and 'rel="next"' in first.headers["link"]
    done = page["items"][0]
    stored = http.get("/dashboard/count", headers=key(tenant, "viewer")).json()["count"]
    assert done["status"] == "succeeded" and done["manifest"]["rows"] == stored
    assert done["file_expires_at"] > done["finished_at"]
    assert done["download_url"].startswith(f"/exports/{done['id']}/download?")
    download = http.get(done["download_url"])
    assert download.status_code == 200 and download.content[:2] == b"\x1f\x8b"
    rest = http.get("/exports", params={"limit": 2, "cursor": page["next_cursor"]},
                    headers=key(tenant, "admin")).json()
    assert [i["id"] for i in rest["items"]] == [made[0]] and rest["next_cursor"] is None
    again = http.get("/exports", params={"limit": 2},
                     headers=key(tenant, "admin", **{"If-None-Match": first.headers["etag"]}))
    assert again.status_code == 304
    # roles: auditor and admin only; another tenant sees none of these
    assert http.get("/exports", headers=key(tenant, "viewer")).status_code == 403
    assert http.get("/exports", headers=key(tenant, "operator")).status_code == 403
    theirs = http.get("/exports", headers=key(dash["other"], "admin")).json()
    assert not {i["id"] for i in theirs["items"]} & set(made)
    assert http.get("/exports", params={"cursor": "bm90LWEtY3Vyc29y"},
                    headers=key(tenant, "admin")).status_code == 400


def wait_done(http: httpx.Client, tenant: str, export_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = http.get(f"/exports/{export_id}", headers=key(tenant, "auditor")).json()["status"]
        if status in ("succeeded", "failed"):
            assert status == "succeeded"
            return
        time.sleep(0.2)
    raise AssertionError(f"export {export_id} did not finish")


def test_session_check_answers_200_without_credentials(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    anonymous = http.get("/bff/session")
    assert anonymous.status_code == 200 and anonymous.json() == {"authenticated": False}
    assert anonymous.headers["cache-control"] == "no-store"
    stale = http.get("/bff/session", cookies={"qcc_session": "not-a-session"})
    assert stale.json() == {"authenticated": False}
    unknown = http.get("/bff/session", headers={"X-Api-Key": "qcc_unknown"})
    assert unknown.status_code == 200 and unknown.json() == {"authenticated": False}
    me = http.get("/bff/session", headers=key(tenant, "auditor")).json()
    assert (me["authenticated"], me["tenant"], me["role"], me["auth"]) == (
        True, tenant, "auditor", "api_key")


def test_signed_reports_show_their_signer_in_lists_and_reads(dash: dict[str, Any]) -> None:
    http, tenant = dash["http"], dash["tenant"]
    made = http.post("/ingest/qc", json=report(source="signed"), headers=key(tenant, "operator"))
    report_id = made.json()["id"]
    signed = http.post(f"/reports/{report_id}/sign", headers=key(tenant, "auditor")).json()
    expected = {"signing_key_id": signed["signing_key_id"], "signer": signed["signer"],
                "signed_at": signed["signed_at"]}
    listed = http.get("/reports", params={"source": "signed"}, headers=key(tenant, "viewer"))
    assert listed.json()["items"][0]["signature"] == expected
    one = http.get(f"/reports/{report_id}", headers=key(tenant, "viewer")).json()
    assert one["signature"] == expected and one["signed"] is True
    unsigned = http.get("/reports", params={"source": "api", "limit": 1},
                        headers=key(tenant, "viewer")).json()["items"][0]
    assert "signature" not in unsigned
