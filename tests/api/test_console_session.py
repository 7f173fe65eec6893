"""The console's BFF session: cookie login, CSRF header, logout everywhere, audit, limits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.factories import headers, report
from tools import liveserver
from tools.liveserver import key_for

CSRF = {"X-Requested-With": "qc-console"}


@pytest.fixture(scope="module")
def console_url(database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = liveserver.start_server(
        database, workers=2, run_dir=tmp_path_factory.mktemp("console"),
        env={"CONSOLE_INSECURE_COOKIES": "true", "CONSOLE_LOGIN_PER_MINUTE": "8",
             "VALIDATE_RESPONSES": "true"})
    yield server.url
    server.stop()


@contextmanager
def login(url: str, role: str, tenant: str = "acme") -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/bff/login", json={"api_key": key_for(tenant, role)})
        assert r.status_code == 200, r.text
        assert r.json()["role"] == role and r.json()["auth"] == "cookie"
        yield client


def test_login_sets_a_strict_httponly_cookie_secure_by_default(http: httpx.Client) -> None:
    r = httpx.post(str(http.base_url).rstrip("/") + "/bff/login", json={"api_key": key_for("acme", "viewer")})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    for part in ("qcc_session=", "HttpOnly", "SameSite=Strict", "Path=/", "Secure"):
        assert part in cookie, cookie
    assert key_for("acme", "viewer") not in cookie and key_for("acme", "viewer") not in r.text


def test_cookie_session_reads_signs_with_csrf_header_and_logout_ends_it(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=10) as keyed:
        made = keyed.post("/ingest/qc", json=report(), headers=headers("acme", "operator"))
        assert made.status_code == 201, made.text
        report_id = made.json()["id"]

    with login(console_url, "auditor") as auditor:
        cookie = auditor.cookies["qcc_session"]
        me = auditor.get("/bff/session").json()
        assert (me["tenant"], me["role"], me["auth"]) == ("acme", "auditor", "cookie")
        assert auditor.get("/reports", params={"limit": 1}).status_code == 200
        # cookie + unsafe method without X-Requested-With: CSRF refusal
        refused = auditor.post(f"/reports/{report_id}/sign")
        assert refused.status_code == 403 and "X-Requested-With" in refused.json()["detail"]
        signed = auditor.post(f"/reports/{report_id}/sign", headers=CSRF)
        assert signed.status_code in (200, 201), signed.text
        assert auditor.post("/bff/logout").status_code == 403  # logout is unsafe too
        assert auditor.post("/bff/logout", headers=CSRF).status_code == 204
        assert "qcc_session" not in auditor.cookies
    # the old cookie is dead on every worker at once
    with httpx.Client(base_url=console_url, timeout=10) as stale:
        for _ in range(4):
            r = stale.get("/reports", cookies={"qcc_session": cookie})
            assert r.status_code == 401, r.text

    with httpx.Client(base_url=console_url, timeout=10) as keyed:
        events = keyed.get("/audit", params={"action": ["session.login", "session.logout"]},
                           headers=headers("acme", "admin")).json()["items"]
        assert {"session.login", "session.logout"} <= {e["action"] for e in events}


def test_cookie_session_applies_the_role_guard(console_url: str) -> None:
    with login(console_url, "viewer") as viewer:
        r = viewer.post("/exports", json={"format": "csv", "since": "-1m"}, headers=CSRF)
        assert r.status_code == 403 and "viewer" in r.json()["detail"]
        assert viewer.get("/ops/metrics").status_code == 403
        assert viewer.get("/timeline").status_code == 200


def test_login_attempts_are_rate_limited_per_address(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=10) as client:
        statuses = [client.post("/bff/login", json={"api_key": "qcc_wrong"}).status_code
                    for _ in range(20)]
    assert statuses[0] == 401 and 429 in statuses, statuses
