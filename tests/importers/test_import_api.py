"""Imports end to end: real producers (pytest, ruff) and committed real samples (Maven
Surefire, Jest, dbt, Great Expectations) through POST /ingest/{format} and `qc-collector
import` on a real server, read back over the API; re-imports store nothing new; hostile
files are a 4xx and store nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.factories import headers
from tests.importers import hostile
from tools.liveserver import key_for

SAMPLES = Path(__file__).parent / "samples"
ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "qc-collector"
XML = "application/xml"
JSON = "application/json"


def unique_source(name: str) -> str:
    return f"ci-{name}-{uuid.uuid4().hex[:10]}"


def stored(http: httpx.Client, source: str) -> list[dict[str, Any]]:
    """Every report of a source, each with its checks (GET /reports, then /reports/{id})."""
    page = http.get("/reports", params={"source": source, "limit": 500, "sort": "observed_at"},
                    headers=headers(role="viewer"))
    assert page.status_code == 200, page.text
    return [http.get(f"/reports/{item['id']}", headers=headers(role="viewer")).json()
            for item in page.json()["items"]]


def post_file(http: httpx.Client, fmt: str, body: bytes, content_type: str, source: str,
              **params: Any) -> httpx.Response:
    return http.post(f"/ingest/{fmt}", content=body, params={"source": source, **params},
                     headers=headers(role="operator", **{"Content-Type": content_type}))


def outcome(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["rule"]: (c["status"], c["severity"]) for c in report["checks"]}


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), "import", *args, "--url", url,
                           "--api-key", key_for("acme", "operator")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def pytest_junit(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """pytest itself writes JUnit XML for a small generated suite."""
    work = tmp_path_factory.mktemp("suite")
    (work / "test_shop.py").write_text(textwrap.dedent("""\
        import pytest

        def test_total():
            assert 2 * 3 == 6

        def test_tax():
            assert round(35 * 0.2) == 8, "tax is off"

        @pytest.fixture
        def prices():
            raise FileNotFoundError("prices.csv")

        def test_prices(prices):
            pass

        @pytest.mark.skip(reason="coupons come next sprint")
        def test_coupons():
            pass
        """))
    out = work / "junit.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "no:asyncio", f"--junitxml={out}", "-o", "junit_suite_name=shop",
                             "--rootdir", str(work), str(work / "test_shop.py")],
                            capture_output=True, text=True, cwd=work, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr  # one failure, one error
    return out.read_bytes()


@pytest.fixture(scope="module")
def ruff_sarif(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """ruff writes SARIF over a small generated file with three findings."""
    work = tmp_path_factory.mktemp("lint")
    (work / "shop.py").write_text("import os\nimport sys\n\n\ndef f(x):\n    return x == None\n")
    result = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--isolated",
                             "--select", "E,F", "--output-format", "sarif", "shop.py"],
                            capture_output=True, cwd=work, timeout=60)
    assert result.returncode == 1, result.stderr
    return result.stdout


def test_pytest_junit_through_the_api_and_reimport_stores_nothing(http, pytest_junit):
    source = unique_source("pytest")
    first = post_file(http, "junit", pytest_junit, XML, source, label=["branch:main"])
    assert first.status_code == 201, first.text
    (summary,) = first.json()["items"]
    assert (summary["status"], summary["severity"]) == ("fail", "block")
    assert summary["counts"] == {"pass": 1, "warn": 1, "fail": 2}
    (report,) = stored(http, source)
    assert report["subject"] == "shop"
    assert report["labels"]["branch"] == "main"
    assert outcome(report) == {
        "test_shop.test_total": ("pass", "warn"),
        "test_shop.test_tax": ("fail", "warn"),
        "test_shop.test_prices": ("fail", "block"),
        "test_shop.test_coupons": ("warn", "info"),
    }
    again = post_file(http, "junit", pytest_junit, XML, source, label=["branch:main"])
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(stored(http, source)) == 1


def test_ruff_sarif_through_the_api(http, ruff_sarif):
    source = unique_source("ruff")
    r = post_file(http, "sarif", ruff_sarif, JSON, source, subject="repo:shop")
    assert r.status_code == 201, r.text
    (report,) = stored(http, source)
    assert report["subject"] == "repo:shop"
    assert report["labels"]["tool"] == "ruff"
    assert sorted(c["rule"] for c in report["checks"]) == ["E711", "F401", "F401"]
    assert {c["status"] for c in report["checks"]} == {"fail"}
    assert report["counts"] == {"pass": 0, "warn": 0, "fail": 3}


def test_dbt_run_results_with_manifest_through_the_api(http):
    source = unique_source("dbt")
    body = orjson.dumps({"run_results": orjson.loads((SAMPLES / "dbt" / "run_results.json").read_bytes()),
                         "manifest": orjson.loads((SAMPLES / "dbt" / "manifest.json").read_bytes())})
    r = post_file(http, "dbt", body, JSON, source)
    assert r.status_code == 201, r.text
    (report,) = stored(http, source)
    assert report["run_id"] == "659120ce-15b8-430d-901a-74b80f9eaba0"
    assert (report["status"], report["severity"]) == ("fail", "block")
    assert report["counts"] == {"pass": 2, "warn": 1, "fail": 1}
    assert outcome(report)["not_null_orders_clean_amount"] == ("pass", "warn")


def test_gx_validation_result_through_the_api(http):
    source = unique_source("gx")
    r = post_file(http, "gx", (SAMPLES / "gx" / "validation_result.json").read_bytes(),
                  "application/octet-stream", source)
    assert r.status_code == 201, r.text
    (report,) = stored(http, source)
    assert report["subject"] == "shop.orders"
    assert report["counts"] == {"pass": 4, "warn": 0, "fail": 2}
    observed = {c["rule"]: c.get("observed") for c in report["checks"]}
    assert observed["expect_column_mean_to_be_between:amount"] == 14.25


def test_cli_posts_surefire_and_jest_samples_in_one_batch_and_replays(http, server):
    source = unique_source("cli")
    files = [str(SAMPLES / "surefire" / "TEST-com.example.shop.CartTest.xml"),
             str(SAMPLES / "jest" / "junit.xml")]
    first = run_cli("junit", *files, "--source", source, "--label", "branch=main", url=server.url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("stored ") == 2
    reports = stored(http, source)
    assert sorted(r["subject"] for r in reports) == ["cart", "com.example.shop.CartTest"]
    surefire = next(r for r in reports if r["subject"] == "com.example.shop.CartTest")
    assert surefire["counts"] == {"pass": 1, "warn": 1, "fail": 2}
    assert outcome(surefire)["com.example.shop.CartTest.loadsPrices"] == ("fail", "block")
    assert all(r["labels"]["branch"] == "main" for r in reports)
    again = run_cli("junit", *files, "--source", source, "--label", "branch=main", url=server.url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("replayed ") == 2
    assert len(stored(http, source)) == 2


def test_cli_dbt_with_manifest_and_gx_checkpoint(http, server):
    source = unique_source("cli-dbt")
    r = run_cli("dbt", str(SAMPLES / "dbt" / "run_results.json"), "--manifest",
                str(SAMPLES / "dbt" / "manifest.json"), "--source", source, url=server.url)
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = stored(http, source)
    assert report["subject"] == "dbt:shop"
    assert report["counts"] == {"pass": 2, "warn": 1, "fail": 1}
    source = unique_source("cli-gx")
    r = run_cli("gx", str(SAMPLES / "gx" / "checkpoint_describe.json"), "--source", source,
                "--subject", "shop.orders", url=server.url)
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = stored(http, source)
    assert report["counts"] == {"pass": 4, "warn": 0, "fail": 2}


def test_cli_names_the_line_of_a_broken_file_and_posts_nothing(http, server, tmp_path):
    broken = tmp_path / "junit.xml"
    broken.write_bytes(hostile.TRUNCATED_XML)
    source = unique_source("cli-broken")
    r = run_cli("junit", str(broken), "--source", source, url=server.url)
    assert r.returncode == 2
    assert "line 4" in r.stderr and str(broken) in r.stderr
    assert stored(http, source) == []


@pytest.mark.parametrize(("name", "fmt", "content_type", "body", "says"), hostile.CASES,
                         ids=[c[0] for c in hostile.CASES])
def test_hostile_files_are_422_and_store_nothing(http, name, fmt, content_type, body, says):
    source = unique_source(name)
    r = post_file(http, fmt, body, content_type, source)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert says in problem["detail"] + " " + orjson.dumps(problem.get("errors", [])).decode(), problem
    assert stored(http, source) == []


def test_a_file_over_10_mib_is_413(http):
    source = unique_source("huge")
    body = b"<testsuite>" + b"<!-- padding -->" * (11 * 1024 * 1024 // 16) + b"</testsuite>"
    r = post_file(http, "junit", body, XML, source)
    assert r.status_code == 413, r.text
    assert r.json()["limit"] == 10 * 1024 * 1024
    assert stored(http, source) == []


def test_roles_content_types_and_formats(http, pytest_junit):
    source = unique_source("guard")
    viewer = http.post("/ingest/junit", content=pytest_junit, params={"source": source},
                       headers=headers(role="viewer", **{"Content-Type": XML}))
    assert viewer.status_code == 403
    plain = http.post("/ingest/junit", content=pytest_junit, params={"source": source},
                      headers=headers(role="operator", **{"Content-Type": "text/plain"}))
    assert plain.status_code == 415
    unknown = post_file(http, "csv", pytest_junit, XML, source)
    assert unknown.status_code == 400
    assert stored(http, source) == []
    # the JSON ingest beside it is untouched by the new path
    assert http.post("/ingest/qc", json={}, headers=headers()).status_code == 422


@pytest.fixture(scope="module")
def limited(database, tmp_path_factory):
    """A server of its own whose tenants may make one request per second (burst 2)."""
    from tools.liveserver import start_server

    live = start_server(database, workers=1, run_dir=tmp_path_factory.mktemp("limited"),
                        env={"RATE_LIMIT_PER_TENANT": "1", "RATE_LIMIT_BURST": "2"})
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client
    live.stop()


def test_imports_share_the_tenants_rate_limit(limited, http, pytest_junit):
    source = unique_source("limited")
    answers = [post_file(limited, "junit", pytest_junit, XML, source, run_id=f"run-{i}")
               for i in range(4)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused, [r.status_code for r in answers]
    assert refused[0].headers["retry-after"]
    assert refused[0].json()["limit"] == 1
    stored_count = sum(r.status_code == 201 for r in answers)
    assert len(stored(http, source)) == stored_count < 4
