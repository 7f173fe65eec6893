"""POST /admin/retention/run over HTTP: dry run, commit by hash, 409s, signed on hold."""

from __future__ import annotations

import psycopg

from tests.factories import headers, report

OLDER_THAN_DAYS = 36500  # a century: only this test's backdated report is that old


def run(http, **body):
    return http.post("/admin/retention/run", json=body, headers=headers(role="admin"))


def test_dry_run_commit_signed_hold_and_stale_plans(http, database):
    stored = http.post("/ingest/qc", json=report(), headers=headers()).json()
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE reports SET received_at = '1900-01-01T00:00:00Z' WHERE id = %s",
                     (stored["id"],))

    planned = run(http, older_than_days=OLDER_THAN_DAYS)  # dry run is the default
    assert planned.status_code == 200, planned.text
    plan = planned.json()
    assert plan["dry_run"] is True and plan["plan"]["candidates"] == 1
    assert plan["plan"]["tenant"] == "acme" and plan["expires_at"]

    # the report is signed after the dry run: the plan no longer holds
    http.post(f"/reports/{stored['id']}/sign", headers=headers(role="auditor"))
    stale = run(http, older_than_days=OLDER_THAN_DAYS, dry_run=False, plan_hash=plan["plan_hash"])
    assert stale.status_code == 409 and "plan changed" in stale.json()["detail"]
    assert http.get(f"/reports/{stored['id']}", headers=headers()).status_code == 200

    held = run(http, older_than_days=OLDER_THAN_DAYS).json()
    assert held["plan"]["candidates"] == 0 and held["plan"]["held_signed"] == 1

    evidence = run(http, older_than_days=OLDER_THAN_DAYS, include_signed=True).json()
    done = run(http, older_than_days=OLDER_THAN_DAYS, dry_run=False,
               plan_hash=evidence["plan_hash"])
    assert done.status_code == 200 and done.json()["deleted"] == 1
    assert done.json()["failures"] == []
    assert http.get(f"/reports/{stored['id']}", headers=headers()).status_code == 404
    audit = http.get("/audit", params={"action": "retention.commit"}, headers=headers()).json()
    assert audit["items"][0]["details"]["deleted"] == 1


def test_commit_needs_a_known_fresh_hash(http):
    unknown = run(http, older_than_days=30, dry_run=False, plan_hash="0" * 64)
    assert unknown.status_code == 409 and "run a new dry run" in unknown.json()["detail"]
    missing = run(http, older_than_days=30, dry_run=False)
    assert missing.status_code == 422
    assert run(http, older_than_days=-1).status_code == 422
    assert http.post("/admin/retention/run", json={"older_than_days": 1},
                     headers=headers(role="auditor")).status_code == 403
