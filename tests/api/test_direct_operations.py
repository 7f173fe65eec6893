"""The operations app/direct.py serves without connexion's chain answer exactly as the chain
does: the session's server (direct, responses validated) beside one with
DIRECT_OPERATIONS=false, on the same database, asked the same questions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.direct import DIRECT
from tests.factories import headers, report
from tools.liveserver import start_server

# What a client can see of an answer besides its body (the request id differs by design).
COMPARED_HEADERS = ("content-type", "etag", "link", "location", "cache-control", "vary",
                    "retry-after", "www-authenticate", "allow", "idempotent-replayed",
                    "x-content-type-options", "referrer-policy")


@pytest.fixture(scope="module")
def chain(database, server, tmp_path_factory) -> Iterator[httpx.Client]:
    live = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("chain"),
                        env={"VALIDATE_RESPONSES": "true", "DIRECT_OPERATIONS": "false"})
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client
    live.stop()


@pytest.fixture(scope="module")
def marker(http) -> str:
    marker = uuid.uuid4().hex[:10]
    bodies = [report(subject=f"{marker}:{i}", labels={"marker": marker},
                     checks=[{"rule": "r", "status": "fail", "severity": ("warn", "block")[i % 2]}])
              for i in range(12)]
    assert http.post("/ingest/qc/batch", json={"reports": bodies},
                     headers=headers()).status_code == 201
    return marker


def seen(response: httpx.Response) -> dict[str, Any]:
    return {"status": response.status_code, "body": response.content,
            **{name: response.headers.get(name) for name in COMPARED_HEADERS}}


def test_direct_covers_the_hot_operations():
    assert set(DIRECT.values()) == {"reports.list_reports", "timeline.get_timeline",
                                    "ingest.ingest_report"}


READS = [
    ("a page with a next page", {"limit": "5"}, "viewer"),
    ("filters, sort", {"severity": "block", "sort": "received_at", "limit": "3"}, "auditor"),
    ("an unknown query parameter", {"limitt": "5"}, "viewer"),
    ("a limit out of range", {"limit": "0"}, "viewer"),
    ("a limit that is no number", {"limit": "many"}, "viewer"),
    ("a bad cursor", {"cursor": "not-a-cursor"}, "viewer"),
    ("a bad enum", {"severity": "fatal"}, "viewer"),
    ("a bad time", {"since": "yesterday"}, "viewer"),
]


@pytest.mark.parametrize("what,params,role", READS, ids=[r[0] for r in READS])
def test_the_list_answers_as_through_the_chain(http, chain, marker, what, params, role):
    query = {"label": f"marker:{marker}", **params}
    direct = http.get("/reports", params=query, headers=headers(role=role))
    through_chain = chain.get("/reports", params=query, headers=headers(role=role))
    assert seen(direct) == seen(through_chain)


@pytest.mark.parametrize("params", [{"bucket": "day", "group_by": "status"},
                                    {"bucket": "week"}, {"group_by": "color"}])
def test_the_timeline_answers_as_through_the_chain(http, chain, marker, params):
    query = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-08T00:00:00Z",
             "label": f"marker:{marker}", **params}
    direct = http.get("/timeline", params=query, headers=headers(role="viewer"))
    assert seen(direct) == seen(chain.get("/timeline", params=query,
                                          headers=headers(role="viewer")))


@pytest.mark.parametrize("path", ["/reports", "/timeline"])
def test_a_read_with_a_malformed_form_content_type_answers_as_through_the_chain(http, chain,
                                                                              path):
    sent = headers(role="viewer", **{"Content-Type": "multipart/form-data"})  # no boundary
    direct = http.get(path, headers=sent)
    assert direct.status_code == 400
    assert seen(direct) == seen(chain.get(path, headers=sent))


REFUSALS = [
    ("no key", {}),
    ("an unknown key", {"X-Api-Key": "qcc_" + "0" * 40}),
    ("another tenant named", {**headers(role="viewer"), "X-Tenant": "globex"}),
]


@pytest.mark.parametrize("what,sent", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_credentials_answer_as_through_the_chain(http, chain, what, sent):
    direct = http.get("/reports", headers=sent)
    assert direct.status_code in (401, 403)
    assert seen(direct) == seen(chain.get("/reports", headers=sent))


BAD_INGESTS = [
    ("a viewer may not ingest", {"role": "viewer"}, report(), None),
    ("a missing field", {}, {k: v for k, v in report().items() if k != "source"}, None),
    ("malformed JSON", {}, None, b'{"source": '),
    ("no content type", {}, None, b"{}"),
    ("a body past the limit", {}, None, b'{"source": "' + b"x" * 2_000_000 + b'"}'),
]


@pytest.mark.parametrize("what,who,body,raw", BAD_INGESTS, ids=[b[0] for b in BAD_INGESTS])
def test_refused_ingests_answer_as_through_the_chain(http, chain, what, who, body, raw):
    def send(client: httpx.Client) -> httpx.Response:
        sent = headers(**who)
        if raw is None:
            return client.post("/ingest/qc", json=body, headers=sent)
        if what != "no content type":
            sent["Content-Type"] = "application/json"
        return client.post("/ingest/qc", content=raw, headers=sent)

    direct = send(http)
    assert 400 <= direct.status_code < 500
    assert seen(direct) == seen(send(chain))


def test_an_ingest_and_its_replay_answer_as_through_the_chain(http, chain):
    answers = []
    for client in (http, chain):
        key = {"Idempotency-Key": uuid.uuid4().hex}
        body = report()
        first = client.post("/ingest/qc", json=body, headers=headers(**key))
        replay = client.post("/ingest/qc", json=body, headers=headers(**key))
        assert first.content == replay.content
        stored = client.get(first.headers["location"], headers=headers(role="viewer"))
        assert stored.status_code == 200 and stored.json()["subject"] == body["subject"]
        answers.append([{**seen(r), "body": sorted(r.json()), "location": None}
                        for r in (first, replay)])
    assert answers[0] == answers[1]
    assert answers[0][0]["status"] == 201 and answers[0][1]["idempotent-replayed"] == "true"
