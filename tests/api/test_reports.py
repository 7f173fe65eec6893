"""GET /reports and /reports/{id}: filters, total order, keyset paging, ETag/304."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import headers, report


@pytest.fixture(scope="module")
def seeded(http):
    """30 reports of one marker with varied severity/status/source/labels."""
    marker = uuid.uuid4().hex[:10]
    bodies = []
    for i in range(30):
        status = ("pass", "warn", "fail")[i % 3]
        bodies.append(report(
            subject=f"{marker}:{i}", source=("etl-a", "etl-b")[i % 2], run_id=str(i),
            observed_at=f"2026-11-{1 + (29 - i) % 28:02d}T00:00:00Z",
            labels={"env": ("prod", "dev")[i % 2], "team": "t" + str(i % 5), "marker": marker},
            checks=[{"rule": "r", "status": status, "severity": ("info", "warn", "block")[i % 3]}]))
    r = http.post("/ingest/qc/batch", json={"reports": bodies}, headers=headers())
    assert r.status_code == 201
    return marker, r.json()["items"]


def listing(http, marker, **params):
    params = {"label": [f"marker:{marker}", *params.pop("label", [])], **params}
    return http.get("/reports", params=params, headers=headers(role="viewer"))


def test_filters_combine_or_within_and_across(http, seeded):
    marker, items = seeded
    r = listing(http, marker, severity=["block", "warn"], source="etl-a", limit=500)
    expected = {i["id"] for i in items if i["severity"] in ("block", "warn") and i["source"] == "etl-a"}
    assert {i["id"] for i in r.json()["items"]} == expected
    r = listing(http, marker, label=["env:prod", "team:t0"])
    expected = {i["id"] for i in items if i["labels"]["env"] == "prod" and i["labels"]["team"] == "t0"}
    assert {i["id"] for i in r.json()["items"]} == expected and expected
    r = listing(http, marker, status="fail", subject=[f"{marker}:2", f"{marker}:5", f"{marker}:3"])
    assert sorted(i["subject"] for i in r.json()["items"]) == [f"{marker}:2", f"{marker}:5"]
    assert listing(http, marker, label=["env:prod", "env:dev"]).json()["items"] == []


def test_severity_filter_shows_only_that_severity(http, seeded):
    marker, _ = seeded
    items = listing(http, marker, severity="block").json()["items"]
    assert items and {i["severity"] for i in items} == {"block"}


@pytest.mark.parametrize("sort", ["-received_at", "received_at", "observed_at", "-observed_at"])
def test_pages_cover_every_row_once_in_total_order(http, seeded, sort):
    marker, items = seeded
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7, "sort": sort, **({"cursor": cursor} if cursor else {})}
        r = listing(http, marker, **params)
        assert r.status_code == 200
        body = r.json()
        seen.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert "link" not in r.headers
            break
        assert r.headers["link"].endswith('>; rel="next"') and f"cursor={cursor}" in r.headers["link"]
    assert pages == 5
    assert sorted(i["id"] for i in seen) == sorted(i["id"] for i in items)
    # every timestamp here is UTC in one format, so string order is time order
    order = [(i[sort.lstrip("-")], i["id"]) for i in seen]
    assert order == sorted(order, reverse=sort.startswith("-"))


def test_link_header_is_followable(http, seeded):
    marker, _ = seeded
    r = listing(http, marker, limit=20)
    link = r.headers["link"].split(">")[0].lstrip("<")
    nxt = http.get(link, headers=headers())
    assert nxt.status_code == 200 and len(nxt.json()["items"]) == 10


def test_etag_304_until_something_changes(http, seeded):
    marker, _ = seeded
    first = listing(http, marker)
    tag = first.headers["etag"]
    again = http.get("/reports", params={"label": f"marker:{marker}"},
                     headers=headers(role="viewer", **{"If-None-Match": tag}))
    assert again.status_code == 304 and again.headers["etag"] == tag and again.content == b""
    assert listing(http, marker).headers["etag"] == tag  # deterministic for identical state
    http.post("/ingest/qc", json=report(), headers=headers())
    changed = http.get("/reports", params={"label": f"marker:{marker}"},
                       headers=headers(role="viewer", **{"If-None-Match": tag}))
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_get_report_whole_with_checks_and_304(http, seeded):
    _, items = seeded
    r = http.get(f"/reports/{items[0]['id']}", headers=headers(role="auditor"))
    assert r.status_code == 200
    body = r.json()
    assert body["checks"] == [{"rule": "r", "status": "pass", "severity": "info"}]
    assert {k: body[k] for k in items[0]} == items[0]
    r2 = http.get(f"/reports/{items[0]['id']}",
                  headers=headers(**{"If-None-Match": r.headers["etag"]}))
    assert r2.status_code == 304


def test_other_tenant_gets_404_and_sees_nothing(http, seeded):
    marker, items = seeded
    r = http.get(f"/reports/{items[0]['id']}", headers=headers(tenant="globex"))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert http.get("/reports", params={"label": f"marker:{marker}"},
                    headers=headers(tenant="globex")).json()["items"] == []
    assert http.get(f"/reports/{uuid.uuid4()}", headers=headers()).status_code == 404


def test_following_the_link_walks_the_same_pages(http, seeded):
    """The `Link: rel=next` keeps every filter of the request (repeated, encoded, unicode)
    and only replaces the cursor: a client that follows it sees what the cursor shows."""
    marker, items = seeded
    viewer = headers(role="viewer")
    subjects = [f"{marker}:{i}" for i in range(30)] + ["é 中文 & = + %"]
    first = http.get("/reports", params={"subject": subjects, "severity": ["warn", "block"],
                                         "label": f"marker:{marker}", "limit": 4},
                     headers=viewer)
    assert first.status_code == 200, first.text
    seen = list(first.json()["items"])
    response = first
    while "link" in response.headers:
        target = response.headers["link"].removeprefix("<").removesuffix('>; rel="next"')
        assert target.startswith("/reports?") and target.count("cursor=") == 1
        response = http.get(target, headers=viewer)
        assert response.status_code == 200, response.text
        seen.extend(response.json()["items"])
    expected = {i["id"] for i in items if i["severity"] in ("warn", "block")}
    assert len(seen) == len(expected) > 4
    assert {i["id"] for i in seen} == expected
