"""Rotation without downtime: API keys (POST /admin/keys/{id}/rotate, grace period),
ENCRYPTION_KEY (keyring + `qc-collector rotate-encryption`) and EXPORT_SIGN_SECRET (old
links verify until they expire) — each while a real server keeps answering."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpserver import HTTPServer

from tests.factories import alert_rule, headers, new_key, report, webhook
from tests.waiting import wait_until
from tools.liveserver import (
    ROOT,
    LiveDatabase,
    LiveServer,
    free_port,
    service_env,
    start_database,
    start_server,
    start_worker,
)

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


class Answering:
    """A client hitting one URL in a loop in the background, recording every status."""

    def __init__(self, request: Callable[[], httpx.Response]) -> None:
        self.request = request
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.statuses.append(self.request().status_code)
            except httpx.HTTPError:
                self.statuses.append(0)
            time.sleep(0.05)

    def __enter__(self) -> Answering:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(10)


# -- API keys --------------------------------------------------------------------------

def test_a_rotated_key_keeps_working_while_clients_switch_over(http: httpx.Client) -> None:
    made = http.post("/admin/keys", json=new_key("rotating"), headers=headers())
    assert made.status_code == 201, made.text
    key_id, old = made.json()["id"], made.json()["secret"]
    current = {"secret": old}
    with httpx.Client(base_url=str(http.base_url), timeout=10) as client, \
            Answering(lambda: client.get("/reports", params={"limit": 1},
                                         headers={"X-Api-Key": current["secret"]})) as load:
        time.sleep(0.3)
        r = http.post(f"/admin/keys/{key_id}/rotate", headers=headers())
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["id"] == key_id and rotated["role"] == "viewer"
        assert rotated["secret"].startswith("qcc_") and rotated["secret"] != old
        assert r.headers["cache-control"] == "no-store"
        time.sleep(0.3)
        current["secret"] = rotated["secret"]  # the client switches over when it can
        time.sleep(0.3)
    assert load.statuses and set(load.statuses) == {200}, load.statuses
    for secret in (old, rotated["secret"]):
        assert http.get("/reports", headers={"X-Api-Key": secret}).status_code == 200
    events = http.get("/audit", params={"action": "key.rotate"}, headers=headers()).json()["items"]
    assert any(e["target"]["id"] == key_id for e in events), events


def test_rotation_is_admin_only_and_answers_404_for_other_ids(http: httpx.Client) -> None:
    made = http.post("/admin/keys", json=new_key("not-yours"),
                     headers=headers("globex", "admin")).json()
    assert http.post(f"/admin/keys/{made['id']}/rotate", headers=headers()).status_code == 404
    assert http.post(f"/admin/keys/{uuid.uuid4()}/rotate", headers=headers()).status_code == 404
    assert http.post(f"/admin/keys/{made['id']}/rotate",
                     headers=headers("globex", "auditor")).status_code == 403
    env_key = next(k for k in http.get("/admin/keys", headers=headers()).json()["items"]
                   if k["origin"] == "env")
    r = http.post(f"/admin/keys/{env_key['id']}/rotate", headers=headers())
    assert r.status_code == 404 and "API_KEYS" in r.json()["detail"]


def test_the_old_secret_stops_after_the_grace_period(database: LiveDatabase,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("grace"),
                          env={"KEY_ROTATION_GRACE": "1"})
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            made = client.post("/admin/keys", json=new_key("short-grace"),
                               headers=headers()).json()
            rotated = client.post(f"/admin/keys/{made['id']}/rotate", headers=headers()).json()
            assert client.get("/reports", headers={"X-Api-Key": rotated["secret"]}).status_code == 200
            # grace (1 s) + at most KEY_CACHE_SECONDS (4 s) in the worker's cache
            wait_until(lambda: client.get("/reports", headers={"X-Api-Key": made["secret"]})
                       .status_code == 401, 12, "the old secret to be refused")
            assert client.get("/reports", headers={"X-Api-Key": rotated["secret"]}).status_code == 200
            # rotating again ends the earlier secret at once; the newest keeps working
            again = client.post(f"/admin/keys/{made['id']}/rotate", headers=headers()).json()
            assert client.get("/reports", headers={"X-Api-Key": again["secret"]}).status_code == 200
    finally:
        server.stop()


# -- ENCRYPTION_KEY --------------------------------------------------------------------

@pytest.fixture()
def receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
    server.expect_request("/hook", method="POST").respond_with_data("ok")
    server.start()
    yield server
    server.stop()


def rotate_encryption(database: LiveDatabase, run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    full = {**service_env(database, run_dir, free_port(), 1), **env}
    done = subprocess.run([sys.executable, "-m", "app.cli", "rotate-encryption"], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture()
def own_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDatabase]:
    """Its own database: rotate-encryption goes over every tenant's rules, and the shared
    one holds rules other tests sealed under keys this test does not know."""
    db = start_database(tmp_path_factory.mktemp("pg-enc"))
    yield db
    db.stop()


def test_encryption_key_rotation_keeps_alerts_flowing(own_database: LiveDatabase,
                                                      receiver: HTTPServer,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    database = own_database
    run_dir = tmp_path_factory.mktemp("enc-rotation")
    common = {"ALERTS_ALLOW_PRIVATE_TARGETS": "true", "ALERT_POLL_SECONDS": "0.2",
              "ALERT_SEND_TIMEOUT": "2", "ALERT_DEDUP_WINDOW": "2"}
    before = {**common, "ENCRYPTION_KEY": KEY_A}
    during = {**common, "ENCRYPTION_KEY": KEY_B, "ENCRYPTION_KEYS_OLD": KEY_A}
    after = {**common, "ENCRYPTION_KEY": KEY_B}
    source = f"enc-{uuid.uuid4().hex[:8]}"
    hook_secret = "webhook-secret-" + uuid.uuid4().hex

    def delivered() -> int:
        return sum(1 for request, _ in receiver.log if source in request.get_data(as_text=True))

    old_server = start_server(database, workers=1, env=before, run_dir=run_dir / "a")
    old_worker = start_worker(database, run_dir=run_dir / "a", env=before, name="worker-a")
    servers: list[Any] = [old_server, old_worker]
    try:
        with httpx.Client(base_url=old_server.url, timeout=10) as client:
            rule = client.post("/alert-rules", headers=headers(), json=alert_rule(
                source, source=source, channels=[webhook(receiver.url_for("/hook"), hook_secret)]))
            assert rule.status_code == 201, rule.text
            client.post("/ingest/qc", json=report(source=source), headers=headers(role="operator"))
        wait_until(lambda: delivered() >= 1, 30, "the first alert under key A")

        # rolling deploy: new processes know B (and A as old) before the old ones stop
        new_server = start_server(database, workers=1, env=during, run_dir=run_dir / "b")
        new_worker = start_worker(database, run_dir=run_dir / "b", env=during, name="worker-b")
        servers += [new_server, new_worker]
        old_worker.stop()
        old_server.stop()
        with httpx.Client(base_url=new_server.url, timeout=10) as client, \
                Answering(lambda: client.get("/alert-rules", headers=headers())) as load:
            first = rotate_encryption(database, run_dir, during)
            assert first["rules"] == 1 and not first["unreadable"], first
            assert rotate_encryption(database, run_dir, during)["rules"] == 0  # idempotent
            time.sleep(0.2)
        assert load.statuses and set(load.statuses) == {200}, load.statuses

        # with only B every sealed secret still opens: the next window's alert is sent
        new_worker.stop()
        final_worker = start_worker(database, run_dir=run_dir / "c", env=after, name="worker-c")
        servers.append(final_worker)
        with httpx.Client(base_url=new_server.url, timeout=10) as client:
            audit = client.get("/audit", params={"action": "encryption.rotate"},
                               headers=headers()).json()["items"]
            assert audit and audit[0]["actor"]["label"] == "cli", audit
            assert audit[0]["details"]["rules"] >= 1
            count = delivered()
            time.sleep(2)  # a new dedup window: its first match is sent at once
            assert client.post("/ingest/qc", json=report(source=source),
                               headers=headers(role="operator")).status_code == 201
            wait_until(lambda: delivered() > count, 30, "an alert under key B only")
        assert "another ENCRYPTION_KEY" not in final_worker.log()
    finally:
        for process in reversed(servers):
            process.stop()


# -- EXPORT_SIGN_SECRET ----------------------------------------------------------------

def test_old_download_links_verify_until_they_expire(database: LiveDatabase, server: LiveServer,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("sign-rotation")
    # Every server here reads the files where the session's server does: the session's
    # worker (same database, same job queue) may be the one that runs this export.
    shared = {"EXPORT_DIR": str(server.log_path.parent / "exports")}
    old_secret, new_secret = "s1-" + uuid.uuid4().hex * 2, "s2-" + uuid.uuid4().hex * 2
    processes: list[Any] = []

    def serve(name: str, env: dict[str, str]) -> LiveServer:
        server = start_server(database, workers=1, run_dir=base / name, env={**shared, **env})
        processes.append(server)
        return server

    try:
        first = serve("first", {"EXPORT_SIGN_SECRET": old_secret})
        processes.append(start_worker(database, run_dir=base / "first", env=shared))
        with httpx.Client(base_url=first.url, timeout=10) as client:
            client.post("/ingest/qc", json=report(), headers=headers(role="operator"))
            made = client.post("/exports", json={"format": "ndjson", "since": "-10m"},
                               headers=headers())
            assert made.status_code == 202, made.text
            export_id = made.json()["id"]

            def finished() -> dict[str, Any] | None:
                state: dict[str, Any] = client.get(f"/exports/{export_id}", headers=headers()).json()
                return state if state["status"] == "succeeded" else None
            old_link = wait_until(finished, 60, "the export")["download_url"]
            assert client.get(old_link).status_code == 200

        # rolling deploy: the new server verifies both, then the old one stops
        rotated = serve("rotated", {"EXPORT_SIGN_SECRET": new_secret,
                                    "EXPORT_SIGN_SECRETS_OLD": old_secret})
        first.stop()
        with httpx.Client(base_url=rotated.url, timeout=10) as client:
            assert client.get(old_link).status_code == 200  # issued before the rotation
            new_link = client.get(f"/exports/{export_id}", headers=headers()).json()["download_url"]
            assert new_link != old_link and client.get(new_link).status_code == 200
            changed = old_link.replace("expires=", "expires=1")
            assert client.get(changed).status_code == 403
        rotated.stop()
        # once the old links have expired the old secret is removed: they stop verifying
        only_new = serve("only-new", {"EXPORT_SIGN_SECRET": new_secret})
        with httpx.Client(base_url=only_new.url, timeout=10) as client:
            assert client.get(old_link).status_code == 403
            assert client.get(new_link).status_code == 200
    finally:
        for process in reversed(processes):
            process.stop()
