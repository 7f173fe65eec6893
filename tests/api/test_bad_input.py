"""Bad input never breaks the service: each gets a 4xx problem+json that says what was
wrong, never a 5xx, nothing is stored, and the server keeps answering afterwards."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import headers, report

PROBLEM_JSON = "application/problem+json"
MIB = 1 << 20
SINGLE_LIMIT = MIB
BATCH_LIMIT = 10 * MIB
INGEST = "/ingest/qc"
BATCH = "/ingest/qc/batch"


# -- helpers ------------------------------------------------------------------------------


def newest_ids(http: httpx.Client, tenant: str = "acme") -> list[str]:
    r = http.get("/reports", params={"limit": 20}, headers=headers(tenant))
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def assert_problem(r: httpx.Response, statuses: int | set[int], *needles: str) -> dict[str, Any]:
    """A 4xx RFC 9457 document whose status matches the answer and whose detail names
    what was wrong (each needle, case-insensitive)."""
    allowed = {statuses} if isinstance(statuses, int) else statuses
    where = f"{r.request.method} {r.request.url.path}"
    assert r.status_code in allowed, f"{where}: {r.status_code} {r.text[:1000]}"
    assert r.headers.get("content-type", "").split(";")[0] == PROBLEM_JSON, (
        f"{where}: content-type {r.headers.get('content-type')!r}: {r.text[:300]}")
    problem = r.json()
    assert isinstance(problem.get("title"), str) and problem["title"], problem
    assert problem.get("status") == r.status_code, problem
    detail = problem.get("detail")
    assert isinstance(detail, str) and detail, problem
    # the contract names a bad field in detail or in errors[].pointer (body pointer or
    # parameter name)
    named = " ".join([detail, *(e.get("pointer", "") for e in problem.get("errors") or [])])
    missing = [n for n in needles if n.lower() not in named.lower()]
    assert not missing, f"{where}: the problem does not name {missing}: {named[:300]!r}"
    return problem


def assert_healthy(http: httpx.Client) -> None:
    r = http.get("/health")
    assert r.status_code == 200, r.text


def rejected(http: httpx.Client, method: str, url: str, statuses: int | set[int],
             *needles: str, tenant: str = "acme", **kwargs: Any) -> dict[str, Any]:
    """Send a bad request; it is refused with a problem, nothing new is stored, and the
    server still answers."""
    kwargs.setdefault("headers", headers(tenant))
    before = newest_ids(http, tenant)
    r = http.request(method, url, **kwargs)
    problem = assert_problem(r, statuses, *needles)
    assert newest_ids(http, tenant) == before, "a rejected request stored something"
    assert_healthy(http)
    return problem


def json_headers(**extra: str) -> dict[str, str]:
    return headers(**{"Content-Type": "application/json", **extra})


def with_check(**fields: Any) -> dict[str, Any]:
    check = {"rule": "row_count_min", "status": "fail", "severity": "block", **fields}
    return report(checks=[check])


def without(*keys: str) -> dict[str, Any]:
    body = report()
    for key in keys:
        del body[key]
    return body


def check_without(key: str) -> dict[str, Any]:
    body = with_check()
    del body["checks"][0][key]
    return body


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def padded(body: Any, size: int) -> bytes:
    """body as JSON, padded with trailing whitespace (still valid JSON) to exactly size bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


# -- bodies that are not JSON, or not UTF-8, or not a JSON object ------------------------

FULL = json.dumps(report()).encode()

RAW_BODIES = [
    # (content, content-type, expected status(es), a word the detail must contain)
    pytest.param(b'{"source": "etl", ', "application/json", 400, "JSON", id="malformed-json"),
    pytest.param(FULL + b" trailing", "application/json", 400, "JSON", id="trailing-garbage"),
    pytest.param(b"", "application/json", 400, "body", id="empty-body"),
    pytest.param(b"   ", "application/json", 400, "", id="whitespace-only"),
    pytest.param(FULL, "text/plain", 415, "application/json", id="text-plain"),
    pytest.param(FULL, "application/xml", 415, "application/json", id="xml"),
    pytest.param(FULL, None, 415, "application/json", id="no-content-type"),
    pytest.param(b"\xff\xfe" + FULL, "application/json", 400, "UTF-8", id="bom-garbage-bytes"),
    pytest.param(json.dumps(report()).encode("utf-16"), "application/json", 400, "UTF-8",
                 id="utf-16-body"),
    pytest.param(FULL.replace(b'"dataset:', b'"\xc3\x28dataset:'), "application/json", 400,
                 "UTF-8", id="invalid-utf8-in-string"),
    pytest.param(FULL.replace(b'"dataset:', '"caf\u00e9:'.encode("latin-1")),
                 "application/json", 400, "UTF-8", id="latin-1-in-string"),
    pytest.param(FULL.replace(b'"dataset:', b'"\\ud800dataset:'), "application/json",
                 {400, 422}, "", id="lone-surrogate"),
    pytest.param(FULL.replace(b'"observed": 0', b'"observed": NaN'), "application/json", 400,
                 "JSON", id="nan-literal"),
    pytest.param(FULL.replace(b'"observed": 0', b'"observed": Infinity'), "application/json",
                 400, "JSON", id="infinity-literal"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", {400, 422}, "",
                 id="deeply-nested"),
    pytest.param(b"[]", "application/json", 422, "object", id="array"),
    pytest.param(b'"a report"', "application/json", 422, "object", id="string"),
    pytest.param(b"42", "application/json", 422, "object", id="number"),
    pytest.param(b"true", "application/json", 422, "object", id="boolean"),
    # null is well-formed JSON, so 422 by the contract; 400 ("a body is required") is fair too
    pytest.param(b"null", "application/json", {400, 422}, "", id="null"),
]


@pytest.mark.parametrize("url", [INGEST, BATCH])
@pytest.mark.parametrize(("content", "content_type", "status", "needle"), RAW_BODIES)
def test_raw_body_is_refused(http, url, content, content_type, status, needle):
    hdrs = headers()
    if content_type:
        hdrs["Content-Type"] = content_type
    rejected(http, "POST", url, status, needle, content=content, headers=hdrs)


def test_content_types_keep_their_answers_however_many_a_client_sends(http):
    """Request validation keeps a few body validators per operation and content type:
    twenty charsets later a bad report is still refused field by field, a good one is
    stored, and text/plain is still 415."""
    bad = json.dumps(report(checks="row_count_min")).encode()
    for i in range(20):
        hdrs = {**headers(), "Content-Type": f"application/json; charset=x-{i}"}
        rejected(http, "POST", INGEST, 422, "/checks", content=bad, headers=hdrs)
    stored = http.post(INGEST, content=FULL,
                       headers={**headers(), "Content-Type": "application/json"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["id"] in newest_ids(http)
    rejected(http, "POST", INGEST, 415, "application/json", content=FULL,
             headers={**headers(), "Content-Type": "text/plain"})


# -- well-formed JSON that breaks the contract: 422 naming the field -----------------------

INVALID_REPORTS = [
    # wrong types
    pytest.param(report(checks="row_count_min"), "/checks", id="checks-not-array"),
    pytest.param(report(checks={"rule": "a"}), "/checks", id="checks-an-object"),
    pytest.param(with_check(status="broken"), "/checks/0/status", id="status-not-in-enum"),
    pytest.param(with_check(severity="critical"), "/checks/0/severity", id="severity-bad"),
    pytest.param(with_check(severity=3), "/checks/0/severity", id="severity-a-number"),
    pytest.param(with_check(rule=5), "/checks/0/rule", id="rule-a-number"),
    pytest.param(report(source=42), "/source", id="source-a-number"),
    pytest.param(report(subject=None), "/subject", id="subject-null"),
    pytest.param(report(labels=["env", "prod"]), "/labels", id="labels-an-array"),
    pytest.param(report(labels={"env": 1}), "/labels/env", id="label-value-a-number"),
    pytest.param(report(checks=["row_count_min"]), "/checks/0", id="check-a-string"),
    # out of range
    pytest.param(report(source="s" * 101), "/source", id="source-101-chars"),
    pytest.param(report(source=""), "/source", id="source-empty"),
    pytest.param(report(source="etl nightly!"), "/source", id="source-bad-characters"),
    pytest.param(report(source="étl"), "/source", id="source-non-ascii"),
    pytest.param(report(subject="s" * 201), "/subject", id="subject-201-chars"),
    pytest.param(report(subject=""), "/subject", id="subject-empty"),
    pytest.param(report(run_id="r" * 201), "/run_id", id="run_id-201-chars"),
    pytest.param(report(checks=[]), "/checks", id="checks-empty"),
    pytest.param(report(checks=[{"rule": f"r{i}", "status": "pass", "severity": "info"}
                                for i in range(1001)]), "/checks", id="1001-checks"),
    pytest.param(report(labels={f"k{i}": "v" for i in range(21)}), "/labels", id="21-labels"),
    pytest.param(report(labels={"k" * 65: "v"}), "/labels", id="label-key-65-chars"),
    pytest.param(report(labels={"": "v"}), "/labels", id="label-key-empty"),
    pytest.param(report(labels={"env": "v" * 257}), "/labels/env", id="label-value-257-chars"),
    pytest.param(with_check(rule="r" * 101), "/checks/0/rule", id="rule-101-chars"),
    pytest.param(with_check(rule=""), "/checks/0/rule", id="rule-empty"),
    pytest.param(with_check(message="m" * 2001), "/checks/0/message", id="message-2001-chars"),
    pytest.param(with_check(observed=2**53), "/checks/0/observed", id="observed-2^53"),
    pytest.param(with_check(observed=-(2**53)), "/checks/0/observed", id="observed-minus-2^53"),
    pytest.param(with_check(observed=10**30), "/checks/0/observed", id="observed-10^30"),
    pytest.param(with_check(observed={"rows": 0}), "/checks/0/observed", id="observed-object"),
    pytest.param(with_check(observed=[0]), "/checks/0/observed", id="observed-array"),
    pytest.param(with_check(expected="e" * 2001), "/checks/0/expected", id="expected-2001"),
    # unknown fields (additionalProperties: false)
    pytest.param(report(tenant="globex"), "tenant", id="unknown-field-tenant"),
    pytest.param(report(extra=1), "extra", id="unknown-field"),
    pytest.param(with_check(colour="red"), "colour", id="unknown-field-in-check"),
    # missing required fields
    *[pytest.param(without(key), key, id=f"missing-{key}")
      for key in ("source", "subject", "observed_at", "checks")],
    *[pytest.param(check_without(key), key, id=f"check-missing-{key}")
      for key in ("rule", "status", "severity")],
    pytest.param({}, "source", id="empty-object"),
    # observed_at that is not an RFC 3339 instant with an offset
    pytest.param(report(observed_at="2026-11-21T02:03:11"), "/observed_at", id="no-offset"),
    pytest.param(report(observed_at="garbage"), "/observed_at", id="observed_at-garbage"),
    pytest.param(report(observed_at="2026-02-30T00:00:00Z"), "/observed_at", id="feb-30"),
    pytest.param(report(observed_at="2026-11-21"), "/observed_at", id="date-only"),
    pytest.param(report(observed_at="2026-11-21T25:00:00Z"), "/observed_at", id="hour-25"),
    pytest.param(report(observed_at="2026-11-21T02:03:11+25:00"), "/observed_at",
                 id="offset-25h"),
    pytest.param(report(observed_at=""), "/observed_at", id="observed_at-empty"),
    pytest.param(report(observed_at=1763690591), "/observed_at", id="observed_at-epoch"),
    # NUL characters, which PostgreSQL text and jsonb cannot hold
    pytest.param(report(subject="dataset:\x00orders"), "/subject", id="nul-in-subject"),
    pytest.param(report(run_id="run\x00481"), "/run_id", id="nul-in-run_id"),
    pytest.param(with_check(rule="row\x00count"), "/checks/0/rule", id="nul-in-rule"),
    pytest.param(with_check(message="0 rows\x00"), "/checks/0/message", id="nul-in-message"),
    pytest.param(with_check(observed="a\x00b"), "/checks/0/observed", id="nul-in-observed"),
    pytest.param(report(labels={"env": "pr\x00od"}), "/labels/env", id="nul-in-label-value"),
    pytest.param(report(labels={"e\x00nv": "prod"}), "/labels", id="nul-in-label-key"),
]


@pytest.mark.parametrize(("body", "needle"), INVALID_REPORTS)
def test_invalid_report_is_422_naming_the_field(http, body, needle):
    problem = rejected(http, "POST", INGEST, 422, needle, json=body)
    assert problem.get("errors"), "422 lists each bad field in errors"


@pytest.mark.parametrize(("body", "needle"), INVALID_REPORTS)
def test_invalid_report_inside_a_batch_names_its_index(http, body, needle):
    reports = [report(), report(), body, report()]
    problem = rejected(http, "POST", BATCH, 422, json={"reports": reports})
    assert problem.get("invalid_indexes") == [2], problem
    errors = problem.get("errors", [])
    assert all(e["pointer"].startswith("/reports/2") for e in errors), problem
    assert needle in " ".join(f"{e['pointer']} {e['detail']}" for e in errors), problem


INVALID_BATCHES = [
    pytest.param({"reports": []}, "/reports", id="empty-batch"),
    pytest.param({"reports": report()}, "/reports", id="reports-not-array"),
    pytest.param({}, "reports", id="missing-reports"),
    pytest.param({"reports": [report()], "dry_run": True}, "dry_run", id="unknown-field"),
    pytest.param(report(), "reports", id="a-single-report"),
]


@pytest.mark.parametrize(("body", "needle"), INVALID_BATCHES)
def test_invalid_batch_shape_is_422(http, body, needle):
    rejected(http, "POST", BATCH, 422, needle, json=body)


def test_batch_over_500_items_is_422_and_stores_nothing(http):
    marker = f"bad-input:{uuid.uuid4().hex}"
    reports = [report(subject=marker, run_id=str(i)) for i in range(501)]
    rejected(http, "POST", BATCH, 422, "/reports", json={"reports": reports})
    r = http.get("/reports", params={"subject": marker}, headers=headers())
    assert r.json()["items"] == []


def test_batch_of_exactly_500_items_is_accepted(http):
    marker = f"bad-input:{uuid.uuid4().hex}"
    reports = [report(subject=marker, run_id=str(i), checks=report()["checks"][:1])
               for i in range(500)]
    r = http.post(BATCH, json={"reports": reports}, headers=headers())
    assert r.status_code == 201, r.text[:500]
    assert len(r.json()["items"]) == 500


# -- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["has space", "x" * 256, "caf\u00e9"])
def test_bad_idempotency_key_is_400(http, key):
    hdrs = json_headers(**{"Idempotency-Key": key})
    raw = [(k.encode(), v.encode("utf-8")) for k, v in hdrs.items()]
    rejected(http, "POST", INGEST, 400, "Idempotency-Key", content=json.dumps(report()),
             headers=raw)


# -- positive edge cases: odd but valid input is stored verbatim ----------------------------

SQL = "'; DROP TABLE reports; --"


def test_sql_looking_strings_are_stored_verbatim(http):
    before = newest_ids(http)
    body = report(subject=SQL, run_id="1' OR '1'='1",
                  labels={"q": "\" OR 1=1; --", "x'); DELETE FROM reports; --": "v"},
                  checks=[{"rule": "'; TRUNCATE reports; --", "status": "fail",
                           "severity": "block", "message": "Robert'); DROP TABLE students;--",
                           "observed": "' UNION SELECT * FROM api_keys --"}])
    r = http.post(INGEST, json=body, headers=headers())
    assert r.status_code == 201, r.text
    stored = http.get(f"/reports/{r.json()['id']}", headers=headers()).json()
    for key in ("subject", "run_id", "labels", "checks", "source", "observed_at"):
        assert stored[key] == body[key], key
    # the table still works: the report is listed, and nothing else went missing
    listed = http.get("/reports", params={"subject": SQL}, headers=headers())
    assert listed.status_code == 200
    assert r.json()["id"] in [i["id"] for i in listed.json()["items"]]
    assert newest_ids(http)[1:] == before[:19]


@pytest.mark.parametrize("value", [SQL, "' OR '1'='1", "%", "_", "\\", "a:b"])
def test_sql_looking_filters_match_nothing_and_break_nothing(http, value):
    for params in ({"subject": value}, {"label": f"env:{value}"}):
        r = http.get("/reports", params=params, headers=headers("globex"))
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [], "no globex report has this subject or label"
    r = http.get("/timeline", params={"subject": value}, headers=headers("globex"))
    assert r.status_code == 200, r.text


def test_unicode_beyond_the_bmp_is_stored_verbatim(http):
    subject = "dataset:\u00e9\u4e2d\U0001f600"  # a valid surrogate pair on the wire
    r = http.post(INGEST, content=json.dumps(report(subject=subject)).encode(),
                  headers=json_headers())
    assert r.status_code == 201, r.text
    assert http.get(f"/reports/{r.json()['id']}", headers=headers()).json()["subject"] == subject


# -- oversized bodies -----------------------------------------------------------------------


def test_body_over_1_mib_is_413_with_the_limit(http):
    problem = rejected(http, "POST", INGEST, 413, content=padded(report(), SINGLE_LIMIT + 1),
                       headers=json_headers())
    assert problem.get("limit") == SINGLE_LIMIT, problem


def test_body_over_1_mib_without_content_length_is_413(http):
    raw = padded(report(), 2 * MIB)

    def chunks() -> Iterator[bytes]:  # a generator makes httpx send chunked encoding
        for i in range(0, len(raw), 64 * 1024):
            yield raw[i:i + 64 * 1024]

    problem = rejected(http, "POST", INGEST, 413, content=chunks(), headers=json_headers())
    assert problem.get("limit") == SINGLE_LIMIT, problem


def test_chunked_body_under_1_mib_is_accepted(http):
    raw = json.dumps(report()).encode()
    r = http.post(INGEST, content=iter([raw[:100], raw[100:]]), headers=json_headers())
    assert r.status_code == 201, r.text


def test_body_of_exactly_1_mib_is_accepted(http):
    r = http.post(INGEST, content=padded(report(), SINGLE_LIMIT), headers=json_headers())
    assert r.status_code == 201, r.text


def test_batch_over_10_mib_is_413_with_the_limit(http):
    body = {"reports": [report() for _ in range(3)]}
    problem = rejected(http, "POST", BATCH, 413, content=padded(body, BATCH_LIMIT + 1),
                       headers=json_headers())
    assert problem.get("limit") == BATCH_LIMIT, problem


def test_batch_between_1_and_10_mib_is_not_413(http):
    # 250 real reports of about 10 KB each: a 2.5 MB batch is within the batch limit
    marker = f"bad-input:{uuid.uuid4().hex}"
    checks = [{"rule": f"r{i}", "status": "warn", "severity": "warn", "message": "m" * 2000}
              for i in range(5)]
    body = {"reports": [report(subject=marker, run_id=str(i), checks=checks)
                        for i in range(250)]}
    raw = json.dumps(body).encode()
    assert SINGLE_LIMIT < len(raw) < BATCH_LIMIT
    r = http.post(BATCH, content=raw, headers=json_headers())
    assert r.status_code == 201, r.text[:500]
    assert len(r.json()["items"]) == 250


# -- query parameters -----------------------------------------------------------------------


def real_cursor(http: httpx.Client, sort: str = "-received_at") -> str:
    r = http.get("/reports", params={"limit": 1, "sort": sort}, headers=headers())
    cursor = r.json()["next_cursor"]
    assert cursor, "needs at least two reports in acme"
    return cursor


@pytest.fixture(scope="module")
def two_reports(http: httpx.Client) -> None:
    for _ in range(2):
        assert http.post(INGEST, json=report(), headers=headers()).status_code == 201


REPORTS_QUERIES = [
    pytest.param({"limit": 0}, "limit", id="limit-0"),
    pytest.param({"limit": 501}, "limit", id="limit-501"),
    pytest.param({"limit": -1}, "limit", id="limit-negative"),
    pytest.param({"limit": "abc"}, "limit", id="limit-abc"),
    pytest.param({"limit": "1.5"}, "limit", id="limit-fraction"),
    pytest.param({"limit": "9" * 30}, "limit", id="limit-huge"),
    pytest.param({"sort": "subject"}, "sort", id="unknown-sort"),
    pytest.param({"sort": "received_at; DROP TABLE reports"}, "sort", id="sql-sort"),
    pytest.param({"cursor": "!!!not-a-cursor!!!"}, "cursor", id="cursor-bad-characters"),
    pytest.param({"cursor": "garbage"}, "cursor", id="cursor-garbage"),
    pytest.param({"cursor": "c" * 513}, "cursor", id="cursor-too-long"),
    pytest.param({"cursor": b64(b'{"junk": true}')}, "cursor", id="cursor-b64-junk-json"),
    pytest.param({"cursor": b64(b"[1, 2, 3]")}, "cursor", id="cursor-b64-array"),
    pytest.param({"cursor": b64(b"not json at all")}, "cursor", id="cursor-b64-not-json"),
    pytest.param({"cursor": b64(b"\xff\xfe\x00")}, "cursor", id="cursor-b64-binary"),
    pytest.param({"cursor": b64(json.dumps({"s": "-received_at", "t": "yesterday",
                                            "i": str(uuid.uuid4())}).encode())},
                 "cursor", id="cursor-b64-bad-time"),
    pytest.param({"cursor": b64(json.dumps({"s": "-received_at", "t": "2026-01-01T00:00:00Z",
                                            "i": "not-a-uuid"}).encode())},
                 "cursor", id="cursor-b64-bad-id"),
    pytest.param({"since": "yesterday"}, "since", id="since-not-a-date-time"),
    pytest.param({"since": "2026-11-21T02:03:11"}, "since", id="since-no-offset"),
    pytest.param({"since": "2026-02-30T00:00:00Z"}, "since", id="since-feb-30"),
    pytest.param({"until": "garbage"}, "until", id="until-garbage"),
    pytest.param({"since": "2026-11-22T00:00:00Z", "until": "2026-11-21T00:00:00Z"}, "since",
                 id="since-after-until"),
    pytest.param({"colour": "red"}, "colour", id="unknown-parameter"),
    pytest.param({"tenant": "globex"}, "tenant", id="unknown-parameter-tenant"),
    pytest.param({"severity": "bogus"}, "severity", id="severity-bogus"),
    pytest.param({"status": "broken"}, "status", id="status-bogus"),
    pytest.param({"source": "has space"}, "source", id="source-bad-characters"),
    pytest.param({"label": "no-colon"}, "label", id="label-without-colon"),
    pytest.param({"label": "k" * 65 + ":v"}, "label", id="label-key-too-long"),
    pytest.param({"subject": "a\x00b"}, "subject", id="nul-in-subject"),
    pytest.param({"label": "env:pr\x00od"}, "label", id="nul-in-label"),
]


@pytest.mark.parametrize(("params", "needle"), REPORTS_QUERIES)
def test_bad_reports_query_is_400(http, two_reports, params, needle):
    rejected(http, "GET", "/reports", 400, needle, params=params)


def test_cursor_from_another_sort_order_is_400(http, two_reports):
    cursor = real_cursor(http, "-received_at")
    rejected(http, "GET", "/reports", 400, "cursor",
             params={"cursor": cursor, "sort": "observed_at"})


def test_tampered_cursor_is_400(http, two_reports):
    cursor = real_cursor(http)  # "<order letter><microseconds>.<report id hex>"
    moment, report_id = cursor[1:].split(".")
    for tampered in (f"x{moment}.{report_id}", f"{cursor[0]}{moment}x.{report_id}",
                     f"{cursor[0]}{moment}.{report_id[:-1]}", f"{cursor[0]}{moment}.{report_id}0",
                     f"{cursor[0]}{'9' * 18}.{report_id}"):
        rejected(http, "GET", "/reports", 400, "cursor", params={"cursor": tampered})


def test_any_well_formed_cursor_is_a_position(http, two_reports):
    # what the schema accepts, the server accepts: "r0.<zeros>" is before every report
    r = http.get("/reports", params={"cursor": "r0." + "0" * 32, "sort": "received_at"},
                 headers=headers())
    assert r.status_code == 200 and r.json()["items"]


TIMELINE_QUERIES = [
    pytest.param({"bucket": "hour", "since": "2020-01-01T00:00:00Z",
                  "until": "2026-01-01T00:00:00Z"}, "bucket", id="52584-hour-buckets"),
    pytest.param({"bucket": "hour", "since": "2026-01-01T00:00:00Z",
                  "until": "2026-02-11T16:00:01Z"}, "bucket", id="1001-hour-buckets"),
    pytest.param({"bucket": "day", "since": "2000-01-01T00:00:00Z",
                  "until": "2026-01-01T00:00:00Z"}, "bucket", id="too-many-day-buckets"),
    pytest.param({"bucket": "hour", "since": "0001-01-01T00:00:00Z"}, "since",
                 id="since-year-1"),
    pytest.param({"bucket": "week"}, "bucket", id="bucket-week"),
    pytest.param({"bucket": ""}, "bucket", id="bucket-empty"),
    pytest.param({"group_by": "subject"}, "group_by", id="group_by-subject"),
    pytest.param({"since": "2026-11-22T00:00:00Z", "until": "2026-11-21T00:00:00Z"}, "since",
                 id="since-after-until"),
    pytest.param({"since": "last week"}, "since", id="since-not-a-date-time"),
    pytest.param({"until": "2026-11-21"}, "until", id="until-date-only"),
    pytest.param({"until": "9999-12-31T23:59:59Z"}, "", id="until-end-of-time"),
    pytest.param({"limit": 5}, "limit", id="unknown-parameter"),
    pytest.param({"severity": "bogus"}, "severity", id="severity-bogus"),
]


@pytest.mark.parametrize(("params", "needle"), TIMELINE_QUERIES)
def test_bad_timeline_query_is_400(http, params, needle):
    rejected(http, "GET", "/timeline", 400, needle, params=params)


def test_timeline_of_exactly_1000_buckets_is_accepted(http):
    r = http.get("/timeline", params={"bucket": "hour", "since": "2026-01-01T00:00:00Z",
                                      "until": "2026-02-11T16:00:00Z"}, headers=headers())
    assert r.status_code == 200, r.text
    assert len(r.json()["buckets"]) == 1000


@pytest.mark.parametrize("report_id", [
    "not-a-uuid",
    "12345",
    "0" * 37,
    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "' OR '1'='1",
    "%00",
    "\u00e9t\u00e9",
    str(uuid.uuid4()) + "%00",
])
def test_report_id_that_is_not_a_uuid_is_400_or_404(http, report_id):
    rejected(http, "GET", f"/reports/{report_id}", {400, 404})


# -- valid-but-extreme instants: stored, or refused with 422, but never a broken tenant -----


@pytest.mark.parametrize("observed_at", [
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "2026-12-31T23:59:60Z",  # a leap second, which RFC 3339 allows
])
def test_extreme_observed_at_never_breaks_listing(http, observed_at):
    # in globex, so that a poisoned tenant does not spill into the other tests
    r = http.post(INGEST, json=report(observed_at=observed_at), headers=headers("globex"))
    if r.status_code != 201:
        assert_problem(r, 422, "observed_at")
        return
    for sort in ("observed_at", "-observed_at", "-received_at"):
        listed = http.get("/reports", params={"sort": sort, "limit": 500},
                          headers=headers("globex"))
        assert listed.status_code == 200, f"sort={sort}: {listed.status_code} {listed.text}"
    got = http.get(f"/reports/{r.json()['id']}", headers=headers("globex"))
    assert got.status_code == 200, got.text
    assert got.json()["observed_at"] == observed_at


def test_a_query_string_accepted_by_one_operation_is_judged_again_by_another(http):
    """Accepted query strings are remembered per operation: the same text on another
    operation, or a different text on the same one, is checked and resolved on its own."""
    source = f"memo-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        r = http.post(INGEST, json=report(source=source), headers=headers("acme", "operator"))
        assert r.status_code == 201, r.text
    viewer = headers("acme", "viewer")
    for _ in range(2):  # the second time from what the operation remembers
        r = http.get(f"/reports?limit=5&source={source}", headers=viewer)
        assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text
    # the same text where `limit` is no parameter: refused, every time
    for _ in range(2):
        assert_problem(http.get(f"/timeline?limit=5&source={source}", headers=viewer), 400,
                       "limit")
    # a text the list refused stays refused; the accepted one stays accepted
    for _ in range(2):
        assert_problem(http.get(f"/reports?limit=0&source={source}", headers=viewer), 400,
                       "limit")
    assert len(http.get(f"/reports?limit=5&source={source}", headers=viewer).json()["items"]) == 3
    # another value of the same parameters: its own resolution (2, not the 5 before)
    r = http.get(f"/reports?limit=2&source={source}", headers=viewer)
    assert r.status_code == 200 and len(r.json()["items"]) == 2 and "next" in r.headers["Link"]
