"""Every (operation, caller) pair answers what the contract's x-roles say, and no tenant
sees another tenant's data.

The matrix is generated from generated/operations.py, so a new operation in the spec shows
up here by itself; it then fails until VALID_REQUESTS says how to make a valid call to it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from generated.operations import OPERATIONS, ROLES, Operation
from tests.factories import alert_rule, headers, new_key, report
from tools.liveserver import key_for

NO_KEY = "no key"
UNKNOWN_KEY = "unknown key"
CALLERS = (*ROLES, NO_KEY, UNKNOWN_KEY)
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Call:
    """How to make one valid request to an operation; method and path come from the spec."""

    status: int | tuple[int, ...]  # the success status(es) of a valid request
    path_params: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content_type: str | None = "application/json"

    def succeeded(self, r: httpx.Response) -> bool:
        statuses = self.status if isinstance(self.status, tuple) else (self.status,)
        return r.status_code in statuses


@dataclass(frozen=True)
class Context:
    report_id: str  # a report stored in tenant acme
    key_id: str  # an API key of tenant acme, fresh for each test (revoking it is valid)
    export_id: str  # a finished export of tenant acme
    download: dict[str, str]  # its signed URL's query
    marker: str  # unique per call: subject of whatever the call would store
    rule_id: str  # an alert rule of tenant acme, fresh for each test (deleting it is valid)


# operation id -> a valid request. Add a line here when you add an operation to the spec.
VALID_REQUESTS: dict[str, Callable[[Context], Call]] = {
    "system.get_health": lambda ctx: Call(200),
    "system.get_ready": lambda ctx: Call(200),
    "ingest.ingest_report": lambda ctx: Call(201, json=report(subject=ctx.marker)),
    "ingest.ingest_batch": lambda ctx: Call(
        201, json={"reports": [report(subject=ctx.marker), report(subject=ctx.marker)]}),
    # a Great Expectations validation result: a JSON file, so the matrix's JSON client fits
    "imports.import_file": lambda ctx: Call(
        201, path_params={"format": "gx"}, params={"source": "matrix", "subject": ctx.marker},
        json={"success": True, "results": [{"success": True, "expectation_config": {
            "type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}}]}),
    "reports.list_reports": lambda ctx: Call(200, params={"limit": 5}),
    "reports.get_report": lambda ctx: Call(200, path_params={"id": ctx.report_id}),
    "timeline.get_timeline": lambda ctx: Call(200, params={"bucket": "hour"}),
    "dashboard.list_top": lambda ctx: Call(200, params={"by": "subject"}),
    "dashboard.list_pass_rates": lambda ctx: Call(200),
    "dashboard.count_reports": lambda ctx: Call(200, params={"severity": "block"}),
    # the first signature is 201, every later one returns it with 200
    "evidence.sign_report": lambda ctx: Call((200, 201), path_params={"id": ctx.report_id}),
    "evidence.get_bundle": lambda ctx: Call(200, path_params={"id": ctx.report_id},
                                            content_type="application/zip"),
    "evidence.list_signing_keys": lambda ctx: Call(200),
    "keys.create_key": lambda ctx: Call(201, json=new_key(ctx.marker)),
    "keys.list_keys": lambda ctx: Call(200),
    "keys.revoke_key": lambda ctx: Call(204, path_params={"id": ctx.key_id}, content_type=None),
    "keys.rotate_key": lambda ctx: Call(200, path_params={"id": ctx.key_id}),
    "audit.list_events": lambda ctx: Call(200, params={"limit": 5}),
    # an identical request returns the running export: repeated calls stay under the limit
    "exports.create_export": lambda ctx: Call(202, json={"format": "csv", "since": "-1m"}),
    "exports.list_exports": lambda ctx: Call(200, params={"limit": 5}),
    "exports.get_export": lambda ctx: Call(200, path_params={"id": ctx.export_id}),
    "exports.download_export": lambda ctx: Call(200, path_params={"id": ctx.export_id},
                                                params=ctx.download,
                                                content_type="application/gzip"),
    "retention.run_retention": lambda ctx: Call(200, json={"older_than_days": 36500}),
    "alerts.list_rules": lambda ctx: Call(200),
    "alerts.create_rule": lambda ctx: Call(201, json=alert_rule(ctx.marker)),
    "alerts.delete_rule": lambda ctx: Call(204, path_params={"id": ctx.rule_id}, content_type=None),
    "alerts.list_notifications": lambda ctx: Call(200, params={"limit": 5}),
    "ops.get_metrics": lambda ctx: Call(200),
    # public: anyone may try to log in (a Secure cookie: this http client never sends it)
    "bff.create_session": lambda ctx: Call(200, json={"api_key": key_for("acme", "viewer")}),
    "bff.delete_session": lambda ctx: Call(204, content_type=None),
    "bff.get_session": lambda ctx: Call(200),
}

AUTHENTICATED = [op for op in OPERATIONS if op.authenticated]
# operations whose path names a tenant's resource (POST /ingest/{format} names a file format)
WITH_PATH_PARAMS = [op for op in AUTHENTICATED if "{" in op.path and op.id != "imports.import_file"]


def caller_headers(caller: str, tenant: str = "acme", **extra: str) -> dict[str, str]:
    if caller == NO_KEY:
        return dict(extra)
    if caller == UNKNOWN_KEY:
        return {"X-Api-Key": f"qcc_unknown_{uuid.uuid4().hex}", **extra}
    return headers(tenant, caller, **extra)


def send(http: httpx.Client, op: Operation, call: Call, hdrs: dict[str, str]) -> httpx.Response:
    return http.request(op.method, op.path.format(**call.path_params), params=call.params,
                        json=call.json, headers=hdrs)


def assert_problem(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    assert r.headers["content-type"].split(";")[0] == PROBLEM_JSON, r.headers["content-type"]
    problem = r.json()
    assert problem["status"] == status and problem["title"], problem


def stored_subjects(http: httpx.Client, tenant: str, subject: str) -> list[str]:
    r = http.get("/reports", params={"subject": subject, "limit": 500},
                 headers=headers(tenant, "admin"))
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def ingest(http: httpx.Client, tenant: str, subject: str) -> dict[str, Any]:
    r = http.post("/ingest/qc", json=report(subject=subject), headers=headers(tenant, "operator"))
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def acme_report(http: httpx.Client) -> dict[str, Any]:
    return ingest(http, "acme", f"matrix:acme:{uuid.uuid4().hex}")


@pytest.fixture(scope="module")
def globex_report(http: httpx.Client) -> dict[str, Any]:
    return ingest(http, "globex", f"matrix:globex:{uuid.uuid4().hex}")


@pytest.fixture(scope="module")
def finished_export(http: httpx.Client, worker: Any) -> dict[str, Any]:
    made = http.post("/exports", json={"format": "ndjson", "since": "-5m"},
                     headers=headers("acme", "admin"))
    assert made.status_code == 202, made.text
    for _ in range(300):
        export = http.get(f"/exports/{made.json()['id']}", headers=headers("acme", "admin")).json()
        if export["status"] == "succeeded":
            return export
        time.sleep(0.1)
    raise AssertionError(f"export did not finish: {export}")


@pytest.fixture
def ctx(http: httpx.Client, acme_report: dict[str, Any],
        finished_export: dict[str, Any]) -> Iterator[Context]:
    marker = f"matrix:{uuid.uuid4().hex}"
    made = http.post("/admin/keys", json=new_key(marker),
                     headers=headers("acme", "admin"))
    assert made.status_code == 201, made.text
    rule = http.post("/alert-rules", json=alert_rule(marker), headers=headers("acme", "admin"))
    assert rule.status_code == 201, rule.text
    query = dict(parse_qsl(urlsplit(finished_export["download_url"]).query))
    yield Context(report_id=acme_report["id"], key_id=made.json()["id"],
                  export_id=finished_export["id"], download=query, marker=marker,
                  rule_id=rule.json()["id"])
    # a tenant may have 100 active rules: leave only what the test itself created
    http.delete(f"/alert-rules/{rule.json()['id']}", headers=headers("acme", "admin"))


def valid_call(op: Operation, ctx: Context) -> Call:
    build = VALID_REQUESTS.get(op.id)
    if build is None:
        pytest.fail(f"{op.id} ({op.method} {op.path}) is in the spec but not in VALID_REQUESTS: "
                    "add a valid request for it so the role matrix covers it")
    return build(ctx)


def test_every_operation_has_a_valid_request_and_no_stale_entries():
    assert set(VALID_REQUESTS) == {op.id for op in OPERATIONS}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
def test_role_matrix(http, ctx, op, caller):
    call = valid_call(op, ctx)
    r = send(http, op, call, caller_headers(caller))
    if not op.authenticated:
        # public probes answer anyone, with or without a key
        assert call.succeeded(r), r.text
    elif caller in (NO_KEY, UNKNOWN_KEY):
        assert_problem(r, 401)
    elif caller not in op.roles:
        assert_problem(r, 403)
        assert caller in r.json().get("detail", ""), "a 403 should say which role was refused"
    else:
        assert call.succeeded(r), r.text
        assert r.headers.get("content-type", "").split(";")[0] == (call.content_type or "")
    if r.status_code in (401, 403):
        # a refused call has no effect: nothing it carried is stored
        assert stored_subjects(http, "acme", ctx.marker) == []


@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.id)
def test_x_tenant_equal_to_the_keys_tenant_is_accepted(http, ctx, op):
    call = valid_call(op, ctx)
    r = send(http, op, call, headers("acme", "admin", **{"X-Tenant": "acme"}))
    assert call.succeeded(r), r.text


@pytest.mark.parametrize("other", ["globex", "nosuch-tenant"])
@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.id)
def test_x_tenant_other_than_the_keys_tenant_is_403(http, ctx, op, other):
    r = send(http, op, valid_call(op, ctx), headers("acme", "admin", **{"X-Tenant": other}))
    assert_problem(r, 403)
    assert stored_subjects(http, "acme", ctx.marker) == []
    assert stored_subjects(http, "globex", ctx.marker) == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("op", WITH_PATH_PARAMS, ids=lambda op: op.id)
def test_another_tenants_resource_is_404_never_403(http, ctx, acme_report, op, role):
    # the valid requests address acme's resources; globex must not learn they exist
    if role not in op.roles:
        pytest.skip(f"{role} may not call {op.id} at all")
    r = send(http, op, valid_call(op, ctx), headers("globex", role))
    assert_problem(r, 404)
    assert acme_report["subject"] not in r.text
    assert acme_report["content_sha256"] not in r.text


def test_unknown_report_id_in_own_tenant_is_404(http):
    r = http.get(f"/reports/{uuid.uuid4()}", headers=headers("acme", "viewer"))
    assert_problem(r, 404)


def test_own_tenant_reads_its_report(http, acme_report):
    r = http.get(f"/reports/{acme_report['id']}", headers=headers("acme", "viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == acme_report["subject"]
    assert r.json()["tenant"] == "acme"


@pytest.mark.parametrize(("tenant", "other"), [("acme", "globex"), ("globex", "acme")])
def test_lists_never_show_another_tenants_reports(http, acme_report, globex_report,
                                                  tenant, other):
    own = {"acme": acme_report, "globex": globex_report}[tenant]
    theirs = {"acme": acme_report, "globex": globex_report}[other]
    hdrs = headers(tenant, "viewer")
    # filtered by the other tenant's subject: nothing
    r = http.get("/reports", params={"subject": theirs["subject"]}, headers=hdrs)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    # filtered by its own subject: its report
    r = http.get("/reports", params={"subject": own["subject"]}, headers=hdrs)
    assert [i["id"] for i in r.json()["items"]] == [own["id"]]
    # unfiltered, every page: only its own tenant's rows
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        page = http.get("/reports", params=params, headers=hdrs)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        if not page.json()["next_cursor"]:
            break
        params["cursor"] = page.json()["next_cursor"]
    assert {i["tenant"] for i in seen} == {tenant}
    assert theirs["id"] not in {i["id"] for i in seen}
    assert own["id"] in {i["id"] for i in seen}


def timeline_total(http: httpx.Client, tenant: str, **params: Any) -> int:
    r = http.get("/timeline", params={"bucket": "hour", **params},
                 headers=headers(tenant, "viewer"))
    assert r.status_code == 200, r.text
    return sum(b["total"] for b in r.json()["buckets"])


def test_timeline_never_counts_another_tenants_reports(http, acme_report, globex_report):
    assert timeline_total(http, "acme", subject=acme_report["subject"]) == 1
    assert timeline_total(http, "globex", subject=acme_report["subject"]) == 0
    assert timeline_total(http, "globex", subject=globex_report["subject"]) == 1
    assert timeline_total(http, "acme", subject=globex_report["subject"]) == 0
    # a report ingested by globex moves globex's timeline only
    before = (timeline_total(http, "acme"), timeline_total(http, "globex"))
    ingest(http, "globex", f"matrix:globex:{uuid.uuid4().hex}")
    assert (timeline_total(http, "acme"), timeline_total(http, "globex")) == (
        before[0], before[1] + 1)


def test_ingest_stores_into_the_keys_tenant(http):
    subject = f"matrix:{uuid.uuid4().hex}"
    summary = ingest(http, "globex", subject)
    assert summary["tenant"] == "globex"
    assert stored_subjects(http, "globex", subject) == [summary["id"]]
    assert stored_subjects(http, "acme", subject) == []
