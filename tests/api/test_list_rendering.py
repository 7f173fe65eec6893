"""A list item is rendered by PostgreSQL (app/storage/queries.sql `list_reports_json`): it
must say exactly what the single report says, for hostile text as for plain."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import headers, report

HOSTILE = 'quote " backslash \\ slash / tab \t newline \n bell \x07 é 中文 😀 </script>'
SUMMARY_FIELDS = ("id", "tenant", "source", "subject", "observed_at", "received_at", "labels",
                  "status", "severity", "content_sha256", "signed")


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("run_id", [None, HOSTILE])
def test_a_list_item_says_what_the_report_says(http, signed, run_id):
    marker = uuid.uuid4().hex[:10]
    body = report(subject=f"{marker} {HOSTILE}", source="render-test",
                  labels={"marker": marker, "text": HOSTILE, "empty": ""},
                  observed_at="2026-11-21T02:03:11.5+01:00")
    if run_id is None:
        body.pop("run_id")
    else:
        body["run_id"] = run_id
    created = http.post("/ingest/qc", json=body, headers=headers())
    assert created.status_code == 201, created.text
    report_id = created.json()["id"]
    if signed:
        assert http.post(f"/reports/{report_id}/sign",
                         headers=headers(role="auditor")).status_code == 201
    listed = http.get("/reports", params={"label": f"marker:{marker}"},
                      headers=headers(role="viewer"))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    whole = http.get(f"/reports/{report_id}", headers=headers(role="viewer")).json()

    for field in SUMMARY_FIELDS:
        assert item[field] == whole[field], field
    assert item["subject"].endswith(HOSTILE) and item["labels"]["text"] == HOSTILE
    assert item["counts"] == {"pass": 1, "warn": 0, "fail": 1}
    assert ("run_id" in item) == (run_id is not None) and item.get("run_id") == whole.get("run_id")
    assert ("signature" in item) == signed
    if signed:
        assert item["signature"] == whole["signature"]
        assert item["signature"]["signer"]["role"] == "auditor"


INJECTIONS = ("x' OR '1'='1", "x'); SELECT pg_sleep(5); --", "x\\' OR true --", "100% _%",
              "$$ OR true $$", "E'\\x27'")


@pytest.mark.parametrize("value", [HOSTILE, *INJECTIONS])
def test_filter_values_are_data_not_sql(http, value):
    """The list, the timeline and the single report are read in one round trip with the
    parameters bound by the driver's literal quoting (app/storage/db.py read_versioned):
    a filter value finds exactly the report that carries it, and SQL in a value is text."""
    marker = uuid.uuid4().hex[:10]
    mine = report(subject=f"{marker}{value}", labels={"marker": marker, "text": value})
    other = report(subject=f"{marker}other", labels={"marker": marker, "text": "other"})
    ids = []
    for body in (mine, other):
        created = http.post("/ingest/qc", json=body, headers=headers())
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    viewer = headers(role="viewer")

    for params in ({"subject": f"{marker}{value}"},
                   {"label": [f"marker:{marker}", f"text:{value}"]}):
        listed = http.get("/reports", params=params, headers=viewer)
        assert listed.status_code == 200, (params, listed.text)
        assert [item["id"] for item in listed.json()["items"]] == [ids[0]], params

    timeline = http.get("/timeline", params={"subject": f"{marker}{value}", "bucket": "day"},
                        headers=viewer)
    assert timeline.status_code == 200, timeline.text
    assert sum(b["total"] for b in timeline.json()["buckets"]) == 1
    assert http.get(f"/reports/{ids[0]}", headers=viewer).json()["subject"] == f"{marker}{value}"
