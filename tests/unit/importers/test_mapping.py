"""The importers as pure functions: real files (committed samples) -> submissions that
the contract accepts, with the documented mapping; hostile files -> InvalidFile."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from app.importers import InvalidFile, Options, to_reports
from app.validation import to_json_schema
from tests.importers import hostile

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "tests" / "importers" / "samples"  # shared with the API and live tests there
SPEC = ROOT / "openapi" / "openapi.yaml"
WHEN = datetime(2026, 11, 21, 2, 3, 11, tzinfo=UTC)


@pytest.fixture(scope="module")
def batch_schema() -> Any:
    spec = to_json_schema(yaml.safe_load(SPEC.read_text()))
    return jsonschema_rs.Draft4Validator({"$ref": "#/components/schemas/BatchSubmission",
                                          "components": spec["components"]})


def mapped(fmt: str, raw: bytes, batch_schema: Any, **options: Any) -> list[dict[str, Any]]:
    submissions = to_reports(fmt, raw, Options(source="ci", observed_at=WHEN, **options))
    errors = [e.message for e in batch_schema.iter_errors({"reports": submissions})]
    assert errors == [], errors
    return submissions


def statuses(submission: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["rule"]: (c["status"], c["severity"]) for c in submission["checks"]}


def test_jest_junit_sample(batch_schema):
    (report,) = mapped("junit", (SAMPLES / "jest" / "junit.xml").read_bytes(), batch_schema)
    assert report["subject"] == "cart"
    assert report["observed_at"] == "2026-12-02T03:14:01.000000Z"  # no offset: taken as UTC
    assert statuses(report) == {
        "cart totals the items": ("pass", "warn"),
        "cart applies tax": ("fail", "warn"),
        "cart discounts coupons": ("warn", "info"),
        "checkout empty cart totals zero": ("pass", "warn"),
    }
    assert "Expected: 8" in next(c for c in report["checks"] if c["status"] == "fail")["message"]


def test_surefire_sample_error_is_block_and_subject_option_wins(batch_schema):
    reports = mapped("junit", (SAMPLES / "surefire" / "TEST-com.example.shop.CartTest.xml").read_bytes(),
                     batch_schema, subject="repo:shop", labels={"branch": "main"})
    (report,) = reports
    assert report["subject"] == "repo:shop"
    assert report["labels"]["branch"] == "main"
    assert report["labels"]["suite"] == "com.example.shop.CartTest"
    found = statuses(report)
    assert found["com.example.shop.CartTest.totalsItems"] == ("pass", "warn")
    assert found["com.example.shop.CartTest.appliesTax"] == ("fail", "warn")
    assert found["com.example.shop.CartTest.loadsPrices"] == ("fail", "block")
    assert found["com.example.shop.CartTest.discountsCoupons"] == ("warn", "info")


def test_dbt_sample_with_and_without_manifest(batch_schema):
    raw = (SAMPLES / "dbt" / "run_results.json").read_bytes()
    manifest = (SAMPLES / "dbt" / "manifest.json").read_bytes()
    (with_manifest,) = mapped("dbt", raw, batch_schema, manifest=manifest)
    assert with_manifest["subject"] == "dbt:shop"
    assert with_manifest["run_id"] == "659120ce-15b8-430d-901a-74b80f9eaba0"
    assert statuses(with_manifest) == {
        "accepted_values_orders_clean_status__placed__shipped": ("warn", "warn"),
        "not_null_orders_clean_amount": ("pass", "warn"),  # severity: warn in the project
        "not_null_orders_clean_id": ("pass", "block"),
        "unique_orders_clean_id": ("fail", "block"),
    }
    failed = next(c for c in with_manifest["checks"] if c["status"] == "fail")
    assert (failed["observed"], failed["expected"]) == (1, 0)
    (bare,) = mapped("dbt", raw, batch_schema)
    assert bare["subject"] == "dbt"
    assert [c["rule"] for c in bare["checks"]] == [c["rule"] for c in with_manifest["checks"]]


def test_gx_samples(batch_schema):
    (report,) = mapped("gx", (SAMPLES / "gx" / "validation_result.json").read_bytes(), batch_schema)
    assert report["subject"] == "shop.orders"
    assert report["labels"]["suite"] == "orders_quality"
    found = {c["rule"]: c for c in report["checks"]}
    assert found["expect_column_values_to_be_in_set:status"]["status"] == "fail"
    assert found["expect_column_values_to_be_in_set:status"]["observed"] == 1
    assert found["expect_column_mean_to_be_between:amount"]["observed"] == 14.25
    assert found["expect_column_mean_to_be_between:amount"]["expected"] == ">= 5.0, <= 20.0"
    (described,) = mapped("gx", (SAMPLES / "gx" / "checkpoint_describe.json").read_bytes(), batch_schema)
    assert [c["status"] for c in described["checks"]] == [c["status"] for c in report["checks"]]


def test_sarif_levels_kinds_and_suppressions(batch_schema):
    raw = b"""{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "semgrep", "version": "1.2",
      "rules": [{"id": "R1", "defaultConfiguration": {"level": "note"}}]}},
      "automationDetails": {"id": "nightly/42"},
      "results": [
        {"ruleId": "R1", "message": {"text": "a note"}},
        {"ruleId": "R2", "level": "error", "message": {"text": "bad"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/a.py"},
                                             "region": {"startLine": 3, "startColumn": 5}}}]},
        {"ruleId": "R3", "level": "warning", "message": {"text": "meh"},
         "suppressions": [{"kind": "inSource"}]},
        {"ruleId": "R4", "kind": "review", "level": "none", "message": {"text": "look"}}]},
      {"tool": {"driver": {"name": "bandit"}}, "results": []}]}"""
    first, clean = mapped("sarif", raw, batch_schema)
    assert first["run_id"] == "nightly/42"
    assert [(c["rule"], c["status"], c["severity"]) for c in first["checks"]] == [
        ("R1", "fail", "info"), ("R2", "fail", "block"), ("R3", "pass", "warn"), ("R4", "warn", "info")]
    assert first["checks"][1]["observed"] == "src/a.py:3:5"
    assert clean["subject"] == "sarif:bandit"
    assert [(c["status"], c["message"]) for c in clean["checks"]] == [("pass", "no results")]


def test_over_1000_cases_become_parts_and_long_names_keep_their_end(batch_schema):
    cases = "".join(f'<testcase classname="{"pkg." * 40}T" name="test_{i}"/>' for i in range(2500))
    reports = mapped("junit", f'<testsuite name="big">{cases}</testsuite>'.encode(), batch_schema)
    assert [len(r["checks"]) for r in reports] == [1000, 1000, 500]
    assert [r["labels"]["part"] for r in reports] == ["1/3", "2/3", "3/3"]
    assert reports[2]["checks"][-1]["rule"].endswith(".T.test_2499")
    assert len(reports[2]["checks"][-1]["rule"]) == 100


@pytest.mark.parametrize(("name", "fmt", "content_type", "body", "says"), hostile.CASES,
                         ids=[c[0] for c in hostile.CASES])
def test_hostile_and_broken_files_are_invalid(name, fmt, content_type, body, says):
    with pytest.raises(InvalidFile) as caught:
        to_reports(fmt, body, Options(source="ci", observed_at=WHEN))
    problem = caught.value
    shown = problem.detail + " " + " ".join(str(e) for e in problem.extra["errors"])
    assert says in shown, shown


def test_an_external_dtd_is_never_fetched(httpserver, batch_schema):
    """A DOCTYPE naming an external DTD is harmless once nothing is fetched: the file maps,
    and the receiver the DTD points at sees no request."""
    httpserver.expect_request("/evil.dtd").respond_with_data("<!ENTITY x 'boom'>")
    raw = (f'<?xml version="1.0"?>\n<!DOCTYPE testsuite SYSTEM "{httpserver.url_for("/evil.dtd")}">\n'
           '<testsuite name="dtd"><testcase classname="x" name="y"/></testsuite>').encode()
    (report,) = mapped("junit", raw, batch_schema)
    assert statuses(report) == {"x.y": ("pass", "warn")}
    assert httpserver.log == []


def test_the_formats_agree_in_spec_cli_and_importers():
    spec = yaml.safe_load(SPEC.read_text())
    (param,) = [p for p in spec["paths"]["/ingest/{format}"]["post"]["parameters"]
                if p.get("name") == "format"]
    from app.cli import build_parser
    from app.importers import FORMATS

    parser = build_parser()
    args = parser.parse_args(["import", "junit", "f.xml", "--source", "s"])
    assert args.format == "junit"
    choices = next(a for a in parser._subparsers._group_actions[0].choices["import"]._actions
                   if a.dest == "format").choices
    assert set(param["schema"]["enum"]) == set(FORMATS) == set(choices)


def test_gx_legacy_checkpoint_shape_and_exceptions(batch_schema):
    """GX 0.x checkpoint output (`run_results` keyed by validation id, `expectation_type`),
    hand-made after that shape: an exception is fail/block, `warning` severity is warn."""
    raw = b"""{"run_id": {"run_name": "nightly-7", "run_time": "2026-11-21T02:00:00+00:00"},
      "run_results": {"ValidationResultIdentifier::orders/nightly-7": {"validation_result": {
        "success": false, "meta": {"expectation_suite_name": "orders"},
        "results": [
          {"success": false, "expectation_config": {"expectation_type": "expect_column_to_exist",
             "kwargs": {"column": "id"}}, "result": {},
           "exception_info": {"raised_exception": true, "exception_message": "no such table"}},
          {"success": false, "expectation_config": {"expectation_type": "expect_column_max_to_be_between",
             "kwargs": {"column": "amount", "max_value": 100}, "meta": {"severity": "warning"}},
           "result": {"observed_value": 120}}]}}}}"""
    (report,) = mapped("gx", raw, batch_schema)
    assert report["run_id"] == "nightly-7"
    assert report["observed_at"] == "2026-11-21T02:00:00.000000Z"
    assert report["subject"] == "gx:orders"
    first, second = report["checks"]
    assert (first["status"], first["severity"], first["message"]) == (
        "fail", "block", "exception: no such table")
    assert (second["status"], second["severity"], second["observed"], second["expected"]) == (
        "fail", "warn", 120, "<= 100")


def test_dbt_failed_models_explain_missing_tests(batch_schema):
    """Hand-made after run_results.json v6: a model error and a skipped test."""
    raw = b"""{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
      "dbt_version": "1.11.16", "generated_at": "2026-11-21T02:03:11.5Z", "invocation_id": "inv-1"},
      "results": [
        {"unique_id": "model.shop.orders", "status": "error", "message": "relation does not exist"},
        {"unique_id": "model.shop.customers", "status": "success"},
        {"unique_id": "test.shop.not_null_orders_id.abc123", "status": "skipped", "failures": null}]}"""
    (report,) = mapped("dbt", raw, batch_schema)
    assert [(c["rule"], c["status"], c["severity"]) for c in report["checks"]] == [
        ("model:orders", "fail", "block"), ("not_null_orders_id", "warn", "info")]
    assert report["checks"][0]["message"] == "relation does not exist"
