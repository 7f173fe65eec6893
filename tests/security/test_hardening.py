"""Hardened responses: nosniff and Referrer-Policy everywhere, WWW-Authenticate naming the
scheme on every 401, no-store on secrets and sessions, HSTS only over TLS, and CORS only
for the origins CORS_ALLOW_ORIGINS lists."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.factories import headers, new_key
from tools.liveserver import LiveDatabase, start_server

ALLOWED = "https://dash.example.com"


def test_every_kind_of_answer_carries_nosniff_and_referrer_policy(http: httpx.Client) -> None:
    answers = [http.get("/health"), http.get("/reports", headers=headers()),
               http.get(f"/reports/{uuid.uuid4()}", headers=headers()), http.get("/reports"),
               http.get("/nowhere"), http.get("/console/"), http.get("/openapi.json"),
               http.delete("/health")]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", (r.request.url, r.headers)
        assert r.headers["referrer-policy"] == "no-referrer", (r.request.url, r.headers)
        assert "strict-transport-security" not in r.headers  # plain http, no trusted proxy


def test_every_401_names_its_scheme(http: httpx.Client) -> None:
    for r in (http.get("/reports"), http.get("/reports", headers={"X-Api-Key": "qcc_nobody_at_all"}),
              http.get("/reports", cookies={"__Host-qcc_session": "expired-or-forged-session"})):
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'ApiKey realm="qc-collector", header="X-Api-Key"'
        assert r.headers["cache-control"] == "no-store"


def test_secrets_and_sessions_are_never_stored_by_a_cache(http: httpx.Client) -> None:
    made = http.post("/admin/keys", json=new_key("no-store"), headers=headers())
    assert made.headers["cache-control"] == "no-store"
    login = http.post("/bff/login", json={"api_key": made.json()["secret"]})
    assert login.headers["cache-control"] == "no-store"
    session = http.get("/bff/session", headers=headers())
    assert session.headers["cache-control"] == "no-store"


def test_a_spoofed_forwarded_proto_does_not_turn_on_hsts(http: httpx.Client) -> None:
    r = http.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in r.headers


def test_no_cors_by_default(http: httpx.Client) -> None:
    r = http.get("/reports", headers={**headers(), "Origin": ALLOWED})
    assert not any(k.startswith("access-control-") for k in r.headers)
    pre = http.options("/reports", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


@pytest.fixture(scope="module")
def cors(database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("cors"),
                          env={"CORS_ALLOW_ORIGINS": ALLOWED})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def test_cors_answers_only_the_listed_origins(cors: httpx.Client) -> None:
    pre = cors.options("/reports", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET",
                                            "Access-Control-Request-Headers": "X-Api-Key"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ALLOWED
    assert "X-Api-Key".lower() in pre.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in pre.headers  # no cookies cross-origin
    r = cors.get("/reports", headers={**headers(), "Origin": ALLOWED})
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "ETag" in r.headers["access-control-expose-headers"]
    other = cors.get("/reports", headers={**headers(), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = cors.options("/reports", headers={"Origin": "https://evil.example",
                                                "Access-Control-Request-Method": "GET"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
