"""Access proof across every id, generated from generated/operations.py: for each operation
whose path takes an id, another tenant's id and a well-formed unknown id get the same
answer — 404, the same problem body (but for `instance`, the path itself), the same
headers that matter — in the same time, within noise. No existence oracle.

A new operation with an id in its path fails test_every_id_operation_is_covered until it
is given a line in ACME_IDS."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from generated.operations import OPERATIONS, Operation
from tests.factories import alert_rule, headers, new_key, report

WITH_ID = [op for op in OPERATIONS if "{id}" in op.path]
SAMPLES = 20


def acme_export(http: httpx.Client) -> dict[str, Any]:
    made = http.post("/exports", json={"format": "ndjson", "since": "-1m"}, headers=headers())
    assert made.status_code == 202, made.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        export: dict[str, Any] = http.get(f"/exports/{made.json()['id']}", headers=headers()).json()
        if export["status"] == "succeeded":
            return export
        time.sleep(0.1)
    raise AssertionError("the export did not finish")


# operation id -> how to make one of acme's resources of that kind (its id)
ACME_IDS: dict[str, Callable[[httpx.Client], str]] = {
    "reports.get_report": lambda http: ingested(http),
    "evidence.get_bundle": lambda http: ingested(http),
    "evidence.sign_report": lambda http: ingested(http),
    "exports.get_export": lambda http: acme_export(http)["id"],
    "keys.revoke_key": lambda http: made_key(http),
    "keys.rotate_key": lambda http: made_key(http),
    "alerts.delete_rule": lambda http: made_rule(http),
}
# The download link is not addressed by tenant but by signature: it has its own test.
SIGNED = {"exports.download_export"}


def ingested(http: httpx.Client) -> str:
    r = http.post("/ingest/qc", json=report(), headers=headers(role="operator"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def made_key(http: httpx.Client) -> str:
    r = http.post("/admin/keys", json=new_key(f"proof-{uuid.uuid4().hex[:8]}"),
                  headers=headers())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def made_rule(http: httpx.Client) -> str:
    r = http.post("/alert-rules", headers=headers(), json=alert_rule(f"proof-{uuid.uuid4().hex[:8]}"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def strongest(op: Operation) -> str:
    return next(role for role in ("admin", "auditor", "operator", "viewer") if role in op.roles)


def call(http: httpx.Client, op: Operation, resource: str, role: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    r = http.request(op.method, op.path.format(id=resource), headers=headers("globex", role))
    return r, time.perf_counter() - started


def comparable(r: httpx.Response) -> tuple[int, str, str, str]:
    body = r.json()
    body.pop("instance", None)
    kept = {k: r.headers.get(k, "") for k in ("content-type", "cache-control", "vary", "etag",
                                               "www-authenticate", "allow")}
    return r.status_code, r.headers["content-type"], repr(sorted(body.items())), repr(kept)


def test_every_id_operation_is_covered() -> None:
    missing = {op.id for op in WITH_ID} - set(ACME_IDS) - SIGNED
    assert not missing, f"add these operations to ACME_IDS: {sorted(missing)}"
    assert not (set(ACME_IDS) | SIGNED) - {op.id for op in WITH_ID}, "stale entries"


@pytest.mark.parametrize("op", [op for op in WITH_ID if op.id not in SIGNED], ids=lambda op: op.id)
def test_another_tenants_id_and_an_unknown_id_are_indistinguishable(http: httpx.Client, worker: Any,
                                                                    op: Operation) -> None:
    foreign = ACME_IDS[op.id](http)
    role = strongest(op)
    answers: dict[str, list[tuple[httpx.Response, float]]] = {"foreign": [], "unknown": []}
    http.request(op.method, op.path.format(id=foreign), headers=headers("globex", role))  # warm
    for i in range(SAMPLES):  # interleaved, in turns first, so load hits both alike
        order = ("foreign", "unknown") if i % 2 else ("unknown", "foreign")
        for name in order:
            resource = foreign if name == "foreign" else str(uuid.uuid4())
            answers[name].append(call(http, op, resource, role))
    shapes = {name: {comparable(r) for r, _ in runs} for name, runs in answers.items()}
    assert len(shapes["foreign"]) == 1 and shapes["foreign"] == shapes["unknown"], shapes
    status, content_type, _, _ = next(iter(shapes["foreign"]))
    assert status == 404 and content_type == "application/problem+json"
    # Within noise: the same queries run either way (the tenant id is in each of them).
    # The fastest of 20 answers is each path's own cost; the 2-core machine's load (other
    # test suites) moves medians by tens of ms, so they are reported, not compared.
    fastest = {name: min(t for _, t in runs) for name, runs in answers.items()}
    medians = {name: statistics.median(t for _, t in runs) for name, runs in answers.items()}
    slower, faster = max(fastest.values()), min(fastest.values())
    assert slower - faster <= max(0.005, 0.5 * faster), (fastest, medians)
    # the resource is untouched and still acme's
    if op.method == "GET":
        assert http.get(op.path.format(id=foreign), headers=headers()).status_code == 200


def test_a_download_link_for_another_id_or_an_unknown_id_is_refused_alike(http: httpx.Client,
                                                                         worker: Any) -> None:
    export = acme_export(http)
    query = dict(parse_qsl(urlsplit(export["download_url"]).query))
    other = acme_export_of(http, "globex")
    responses = [http.get(f"/exports/{export_id}/download", params=query)
                 for export_id in (other, str(uuid.uuid4()))]
    assert {r.status_code for r in responses} == {403}
    assert len({orjson_without_instance(r) for r in responses}) == 1


def acme_export_of(http: httpx.Client, tenant: str) -> str:
    made = http.post("/exports", json={"format": "csv", "since": "-1m"},
                     headers=headers(tenant, "admin"))
    assert made.status_code == 202, made.text
    return str(made.json()["id"])


def orjson_without_instance(r: httpx.Response) -> str:
    body = r.json()
    body.pop("instance", None)
    return repr(sorted(body.items()))
