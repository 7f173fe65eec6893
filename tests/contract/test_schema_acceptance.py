"""What the schema accepts, the server accepts — the cases schemathesis found refused or
crashing (issue 18), each pinned over HTTP against a real server."""

from __future__ import annotations

from tests.factories import headers, report


def test_a_repeated_query_value_holding_a_comma_stays_one_value(http):
    subject = "dataset:a,b"
    assert http.post("/ingest/qc", json=report(subject=subject, labels={"k": "x,y"}),
                     headers=headers()).status_code == 201
    by_subject = http.get("/reports", params={"subject": subject}, headers=headers())
    assert by_subject.status_code == 200
    assert [r["subject"] for r in by_subject.json()["items"]] == [subject]
    by_label = http.get("/timeline", params={"label": "k:x,y"}, headers=headers())
    assert by_label.status_code == 200, by_label.text


def test_a_well_formed_cursor_of_each_list_is_accepted(http):
    for path, cursor in (("/reports", "R0." + "0" * 32), ("/audit", "0.0"),
                         ("/notifications", "0." + "0" * 32)):
        answer = http.get(path, params={"cursor": cursor}, headers=headers())
        assert answer.status_code == 200, (path, answer.text)


def test_retention_dry_run_defaults_to_retention_days(http):
    answer = http.post("/admin/retention/run", json={"dry_run": True}, headers=headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["dry_run"] is True
    # a commit without its plan_hash is not a valid request (oneOf: dry run | commit)
    refused = http.post("/admin/retention/run", json={"dry_run": False}, headers=headers())
    assert refused.status_code == 422


def test_relative_times_and_nul_label_keys_on_exports(http):
    zero = http.post("/exports", json={"format": "ndjson", "since": "-0d"}, headers=headers())
    assert zero.status_code == 422 and "since" in zero.text  # now the schema refuses it
    nul = http.post("/exports", json={"since": "-561m", "until": "-342m", "format": "ndjson",
                                      "filters": {"labels": {"a\u0000b": ""}}},
                    headers=headers())
    assert nul.status_code == 422, nul.text  # was a 500 (jsonb cannot hold NUL)
    assert "without NUL" in nul.json()["detail"]
