"""dbt-core + dbt-postgres run a tiny project's tests against the real PostgreSQL of the
test session; the run_results.json and manifest.json dbt writes go through
POST /ingest/dbt and are read back.

dbt lives in its own venv (var/dbt-venv, git-ignored), installed from PyPI with every
version pinned in dbt-requirements.txt the first time (about a minute) and reused after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from tests.factories import headers
from tests.importers.dbt_project import command, write_project

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "var" / "dbt-venv"
REQUIREMENTS = Path(__file__).parent / "dbt-requirements.txt"


@pytest.fixture(scope="module")
def dbt() -> Path:
    stamp = VENV / "installed.txt"
    wanted = REQUIREMENTS.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        "-r", str(REQUIREMENTS)], check=True, timeout=600)
        stamp.write_text(wanted)
    return VENV / "bin" / "dbt"


def test_dbt_build_results_through_the_api(dbt, database, http, tmp_path):
    schema = f"dbt_{uuid.uuid4().hex[:8]}"
    project = write_project(tmp_path / "shop", database.owner_url, schema)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_LOG_PATH": str(tmp_path / "logs")}
    run = subprocess.run(command(dbt, project), capture_output=True, text=True, timeout=300,
                         env=env, cwd=tmp_path)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # one test fails by design
    target = project / "target"
    body = orjson.dumps({"run_results": orjson.loads((target / "run_results.json").read_bytes()),
                         "manifest": orjson.loads((target / "manifest.json").read_bytes())})
    source = f"ci-dbt-live-{uuid.uuid4().hex[:8]}"
    r = http.post("/ingest/dbt", content=body, params={"source": source},
                  headers=headers(role="operator", **{"Content-Type": "application/json"}))
    assert r.status_code == 201, r.text
    (summary,) = r.json()["items"]
    assert summary["subject"] == "dbt:shop"
    assert (summary["status"], summary["severity"]) == ("fail", "block")
    assert summary["counts"] == {"pass": 2, "warn": 1, "fail": 1}
    report = http.get(f"/reports/{summary['id']}", headers=headers(role="viewer")).json()
    assert {c["rule"]: (c["status"], c["severity"]) for c in report["checks"]} == {
        "accepted_values_orders_clean_status__placed__shipped": ("warn", "warn"),
        "not_null_orders_clean_amount": ("pass", "warn"),
        "not_null_orders_clean_id": ("pass", "block"),
        "unique_orders_clean_id": ("fail", "block"),
    }
    again = http.post("/ingest/dbt", content=body, params={"source": source},
                      headers=headers(role="operator", **{"Content-Type": "application/json"}))
    assert again.headers["idempotent-replayed"] == "true"
    listed = http.get("/reports", params={"source": source}, headers=headers(role="viewer")).json()
    assert len(listed["items"]) == 1
