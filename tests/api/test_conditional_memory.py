"""A repeated If-None-Match answered from the process's memory (app/conditional.py):
no database work when nothing changed, never stale after a write, same refusals and
same headers as the full path."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.factories import headers, report


def _listing(http: httpx.Client, marker: str, **extra: str) -> httpx.Response:
    return http.get("/reports", params={"label": f"marker:{marker}"},
                    headers=headers(role="viewer", **extra))


@pytest.fixture
def marker(http: httpx.Client) -> str:
    marker = uuid.uuid4().hex[:10]
    r = http.post("/ingest/qc", json=report(labels={"marker": marker}), headers=headers())
    assert r.status_code == 201
    return marker


def _learned(http: httpx.Client, marker: str) -> str:
    """The list's ETag, once a conditional GET has been answered 304 (the process has
    learned it; the listener may need a heartbeat after start-up)."""
    tag = _listing(http, marker).headers["ETag"]
    deadline = time.monotonic() + 10
    while _listing(http, marker, **{"If-None-Match": tag}).status_code != 304:
        assert time.monotonic() < deadline
        tag = _listing(http, marker).headers["ETag"]
    return tag


@contextlib.contextmanager
def version_reads_refused(owner_url: str) -> Iterator[None]:
    """The full path's version read (from tenant_versions, or qcc_tenant_version when reads
    are not prepared) fails while inside: whatever is answered 304 then was answered
    without the database."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("REVOKE EXECUTE ON FUNCTION qcc_tenant_version(text) FROM qcc_app")
        conn.execute("REVOKE SELECT ON tenant_versions FROM qcc_app")
        try:
            yield
        finally:
            conn.execute("GRANT SELECT ON tenant_versions TO qcc_app")
            conn.execute("GRANT EXECUTE ON FUNCTION qcc_tenant_version(text) TO qcc_app")


def test_an_unchanged_list_is_answered_304_without_the_database(http, database, marker):
    tag = _learned(http, marker)
    with version_reads_refused(database.owner_url):
        # a fresh connection per request: both workers of the server answer from memory
        # once they have learned the tag (each learns it from one full answer)
        answers = []
        for _ in range(20):
            with httpx.Client(base_url=str(http.base_url), timeout=10) as fresh:
                answers.append(_listing(fresh, marker, **{"If-None-Match": tag}).status_code)
        assert 304 in answers
        # another ETag gets the 200 this process kept for the URL, with the current tag
        other = _listing(http, marker, **{"If-None-Match": '"not-this-one"'})
        assert other.status_code == 200 and other.headers["ETag"] == tag
        # what memory cannot answer still takes the full path (and fails here, as it must)
        unknown = http.get("/reports", params={"label": f"marker:{marker}", "limit": "7"},
                           headers={**headers(role="viewer"), "If-None-Match": tag})
        assert unknown.status_code >= 500


def test_a_write_is_seen_at_once_by_the_writer_and_promptly_by_every_worker(http, marker):
    tag = _learned(http, marker)
    r = http.post("/ingest/qc", json=report(labels={"marker": marker}), headers=headers())
    assert r.status_code == 201
    # same connection, same process: the write's answer left after the memory forgot
    after = _listing(http, marker, **{"If-None-Match": tag})
    assert after.status_code == 200 and len(after.json()["items"]) == 2
    # any process: the change notification arrives within milliseconds
    started = time.monotonic()
    for _ in range(10):
        with httpx.Client(base_url=str(http.base_url), timeout=10) as fresh:
            while _listing(fresh, marker, **{"If-None-Match": tag}).status_code != 200:
                assert time.monotonic() - started < 1.0
    assert time.monotonic() - started < 5


def test_memory_refuses_what_the_full_path_refuses(http, marker):
    tag = _learned(http, marker)
    wrong_tenant = _listing(http, marker, **{"If-None-Match": tag, "X-Tenant": "globex"})
    assert wrong_tenant.status_code == 403
    assert "X-Tenant" in wrong_tenant.json()["detail"]
    other_tenant = http.get("/reports", params={"label": f"marker:{marker}"},
                            headers={**headers(tenant="globex", role="viewer"),
                                     "If-None-Match": tag})
    assert other_tenant.status_code == 200 and other_tenant.json()["items"] == []
    unknown_key = http.get("/reports", params={"label": f"marker:{marker}"},
                           headers={"X-Api-Key": "acme-viewer-key-9999", "If-None-Match": tag})
    assert unknown_key.status_code == 401
    # a header the contract refuses is refused, never answered with the kept 200 or a 304
    # (the same connection: its worker has learned the page)
    for bad in ('E[Z[-\tteqo', f'{tag},\t"x"', '"' + "a" * 1024 + '"'):
        refused = _listing(http, marker, **{"If-None-Match": bad})
        assert refused.status_code == 400, bad
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert "If-None-Match" in refused.text
    assert _listing(http, marker, **{"If-None-Match": tag}).status_code == 304


def test_a_304_from_memory_carries_the_full_paths_headers(http, marker):
    tag = _learned(http, marker)
    from_memory = _listing(http, marker, **{"If-None-Match": tag})
    # a cookie sends the request the full way (sessions are not answered from memory)
    full = _listing(http, marker, **{"If-None-Match": tag, "Cookie": "unrelated=1"})
    assert from_memory.status_code == full.status_code == 304
    assert from_memory.headers["ETag"] == full.headers["ETag"] == tag
    names = {n.lower() for n in full.headers} - {"date", "x-request-id"}
    assert names <= {n.lower() for n in from_memory.headers}
    for name in ("cache-control", "vary", "x-content-type-options", "referrer-policy"):
        assert from_memory.headers[name] == full.headers[name]


def _answered_from_memory(http: httpx.Client, marker: str) -> httpx.Response:
    """The list as the process kept it (learned like the 304s; a plain GET after that)."""
    _learned(http, marker)
    return _listing(http, marker)


def test_a_repeated_list_is_answered_200_from_memory_without_the_database(
        http, database, marker):
    kept = _answered_from_memory(http, marker)
    assert kept.status_code == 200 and len(kept.json()["items"]) == 1
    for _ in range(10):  # fresh connections: let every worker learn it from a full answer
        with httpx.Client(base_url=str(http.base_url), timeout=10) as fresh:
            assert _listing(fresh, marker).content == kept.content
    with version_reads_refused(database.owner_url):
        same = _listing(http, marker)
        assert same.status_code == 200
        assert same.content == kept.content and same.headers["ETag"] == kept.headers["ETag"]
        answers = []
        for _ in range(20):
            with httpx.Client(base_url=str(http.base_url), timeout=10) as fresh:
                answers.append(_listing(fresh, marker))
        # a worker that has not learned it takes the full path and fails here: never stale
        assert any(a.status_code == 200 for a in answers)
        assert all(a.content == kept.content for a in answers if a.status_code == 200)
        # a client asking for a fresh read always takes the full path
        for fresh_read in ({"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"},
                           {"Pragma": "no-cache"}):
            assert _listing(http, marker, **fresh_read).status_code >= 500


def test_a_write_replaces_the_kept_list_at_once_for_the_writer_and_promptly_for_all(
        http, marker):
    _answered_from_memory(http, marker)
    r = http.post("/ingest/qc", json=report(labels={"marker": marker}), headers=headers())
    assert r.status_code == 201
    assert len(_listing(http, marker).json()["items"]) == 2
    started = time.monotonic()
    for _ in range(10):
        with httpx.Client(base_url=str(http.base_url), timeout=10) as fresh:
            while len(_listing(fresh, marker).json()["items"]) != 2:
                assert time.monotonic() - started < 1.0
    assert time.monotonic() - started < 5


def _from_memory_total(http: httpx.Client) -> dict[str, float]:
    text = http.get("/metrics").text
    return {status: float(n) for status, n in re.findall(
        r'^qcc_answers_from_memory_total\{status="(\d+)"\} (\S+)$', text, re.MULTILINE)}


def test_a_200_from_memory_is_the_full_paths_answer(http, marker):
    before = _from_memory_total(http)
    from_memory = _answered_from_memory(http, marker)
    after = _from_memory_total(http)
    assert after["200"] >= before.get("200", 0) + 1  # the plain GET after learning
    assert after["304"] >= before.get("304", 0) + 1  # _learned's conditional GET
    full = _listing(http, marker, **{"Cache-Control": "no-cache"})
    assert from_memory.status_code == full.status_code == 200
    assert from_memory.content == full.content
    names = {n.lower() for n in full.headers} - {"date", "x-request-id"}
    assert names == {n.lower() for n in from_memory.headers} - {"date", "x-request-id"}
    for name in names:
        assert from_memory.headers[name] == full.headers[name], name
    # refusals are the full path's, as for a 304
    assert _listing(http, marker, **{"X-Tenant": "globex"}).status_code == 403
    other_tenant = http.get("/reports", params={"label": f"marker:{marker}"},
                            headers=headers(tenant="globex", role="viewer"))
    assert other_tenant.status_code == 200 and other_tenant.json()["items"] == []
