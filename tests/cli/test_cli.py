"""The operator CLI against the live database and server: keys and the go-live smoke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.waiting import refusal_streak
from tools.liveserver import key_for


def cli(database, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DATABASE_URL": database.app_url,
                "DATABASE_MIGRATE_URL": database.owner_url, **env}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_keys_create_list_revoke_takes_effect_within_5_seconds(database, http):
    # Only the app role, as in an API pod (docs/RUNBOOK.md: kubectl exec deploy/...-api):
    # `keys` must not migrate (the app role may not create anything in the schema).
    made = cli(database, "keys", "create", "--tenant", "acme", "--role", "viewer", "--name", "ci",
               DATABASE_MIGRATE_URL="")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["secret"].startswith("qcc_") and key["role"] == "viewer"
    assert http.get("/reports", headers={"X-Api-Key": key["secret"]}).status_code == 200
    assert http.post("/ingest/qc", json={}, headers={"X-Api-Key": key["secret"]}).status_code == 403

    listed = cli(database, "keys", "list", "--tenant", "acme")
    assert key["id"] in listed.stdout and key["secret"] not in listed.stdout
    assert "secret_sha256" not in listed.stdout

    assert cli(database, "keys", "revoke", "--tenant", "acme", key["id"]).returncode == 0
    revoked_at = time.monotonic()
    # until both workers refuse it: six 401s in a row (requests spread over the workers)
    streak = refusal_streak(http, key["secret"], since=revoked_at)
    assert streak == 6 and time.monotonic() - revoked_at <= 5.0
    wrong = cli(database, "keys", "revoke", "--tenant", "globex", key["id"])
    assert wrong.returncode == 2 and "no active key" in wrong.stderr


def test_smoke_passes_against_the_live_server(server):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "smoke", "--url", server.url,
         "--api-key", key_for("acme", "admin"), "--tenant", "acme"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 9 and all(line.startswith("PASS") for line in lines)


def test_smoke_reports_a_key_that_may_not_sign(server):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "smoke", "--url", server.url,
         "--api-key", key_for("acme", "operator")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "FAIL  sign" in result.stdout and "admin or auditor" in result.stdout
    assert "PASS  ingest sample" in result.stdout


def test_smoke_fails_loudly_with_a_bad_key(server):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "smoke", "--url", server.url, "--api-key", "nope-nope"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "FAIL  ingest sample" in result.stdout
