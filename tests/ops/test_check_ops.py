"""The ops gate's checks fail on the mistakes they exist for (a validator that passes
everything would make tools/check_ops.py green for nothing)."""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable

import pytest

from tools import check_ops
from tools.check_ops import BIN, Manifest

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
    "spec": {"selector": {"matchLabels": {"a": "b"}},
             "template": {"metadata": {"labels": {"a": "b"}},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}}},
}


def test_kubernetes_schemas_reject_unknown_fields_wrong_types_and_removed_apis():
    assert check_ops.validate_kubernetes(Manifest("t", DEPLOYMENT)) == []
    typo = copy.deepcopy(DEPLOYMENT)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert check_ops.validate_kubernetes(Manifest("t", typo))
    wrong = copy.deepcopy(DEPLOYMENT)
    wrong["spec"]["replicas"] = "three"
    assert check_ops.validate_kubernetes(Manifest("t", wrong))
    removed = {**copy.deepcopy(DEPLOYMENT), "apiVersion": "extensions/v1beta1"}
    assert check_ops.validate_kubernetes(Manifest("t", removed))


def test_crd_schema_rejects_a_bad_duration_and_an_unknown_field():
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "r"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5 min"}]}]}}
    assert any("for" in p for p in check_ops.validate_crd(Manifest("t", rule)))
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m"},
               "spec": {"selector": {}, "endpoints": [{"port": "http", "bearerTokenFil": "/x"}]}}
    assert check_ops.validate_crd(Manifest("t", monitor))


def test_promql_must_parse_and_read_only_metrics_the_service_exposes():
    series = check_ops.known_series()
    assert {"qcc_http_requests_total", "qcc_http_request_duration_seconds_bucket",
            "qcc_requests_rejected_total", "qcc_reports_ingested_total"} <= series
    assert check_ops.check_promql("t", ["sum(rate(qcc_http_requests_total[5m]))"], series) == []
    assert check_ops.check_promql("t", ["sum(rate(qcc_http_requests_total[5m])"], series)
    unknown = check_ops.check_promql("t", ["rate(http_requests_total[5m])"], series)
    assert unknown and "http_requests_total" in unknown[0]


def test_alerts_need_a_severity_and_a_summary():
    rule = Manifest("t", {"kind": "PrometheusRule", "metadata": {"name": "r"}, "spec": {"groups": [
        {"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}})
    assert check_ops.check_rules(rule, set())


def test_runbook_commands_are_checked_against_the_real_cli():
    assert check_ops.cli_accepts(["keys", "revoke", "--tenant", "acme", "X"]) is None
    assert check_ops.cli_accepts(["smoke", "--url", "http://x", "--api-key", "k"]) is None
    assert check_ops.cli_accepts(["keys", "create", "--tenant", "a", "--role", "root", "--name", "n"])
    assert check_ops.cli_accepts(["rotate-everything"])


def test_docs_check_flags_unknown_commands_tools_and_make_targets(monkeypatch):
    doc = check_ops.ROOT / "docs" / "EXAMPLE.md"
    monkeypatch.setattr(check_ops, "documents", lambda: {doc: "\n".join([
        "qc-collector keys create --tenant a --role viewer --name n",
        "qc-collector keys rotate --tenant a", "make test", "make deploy", "tools/backup-db.sh",
        "tools/nope.sh"])})
    problems = "\n".join(check_ops.check_docs())
    assert "keys rotate" in problems and "make deploy" in problems and "tools/nope.sh" in problems
    assert "make test" not in problems and "keys create" not in problems and "backup-db" not in problems


@pytest.mark.parametrize(("tool", "name", "content"), [
    ("hadolint", "Dockerfile", "FROM python:latest\nRUN apt-get install curl\n"),
    ("shellcheck", "bad.sh", "#!/usr/bin/env bash\nrm -rf $DIR/*\n"),
    ("check-jsonschema", "compose.yml",
     "services:\n  api:\n    depends_on:\n      db:\n        condition: later\n"),
])
def test_linters_fail_on_a_broken_file(tmp_path, tool, name, content):
    path = tmp_path / name
    path.write_text(content)
    args = ["--builtin-schema", "vendor.compose-spec"] if tool == "check-jsonschema" else []
    assert check_ops.run_tool(BIN / tool, *args, path)


def test_actionlint_checks_expressions_and_run_scripts(tmp_path):
    workflow = tmp_path / "bad.yml"
    workflow.write_text(textwrap.dedent("""\
        on: push
        jobs:
          a:
            runs-on: ubuntu-24.04
            steps:
              - run: echo ${{ github.evnt_name }}
              - run: cp $SRC $DST
        """))
    problems = "\n".join(check_ops.run_tool(BIN / "actionlint", "-oneline", workflow))
    assert "evnt_name" in problems and "SC2086" in problems


def test_compose_shape_needs_the_worker_after_migrate_sharing_the_export_volume():
    import yaml

    real = yaml.safe_load((check_ops.ROOT / "docker-compose.yml").read_text())
    assert check_ops.compose_shape(real) == []

    def problems_with(change: Callable[[dict], None]) -> str:
        compose = copy.deepcopy(real)
        change(compose)
        return "\n".join(check_ops.compose_shape(compose))

    assert "no worker service" in problems_with(lambda c: c["services"].pop("worker"))
    assert "qc-collector worker" in problems_with(
        lambda c: c["services"]["worker"].update(command=["qc-collector", "serve"]))
    assert "worker must start after migrate" in problems_with(
        lambda c: c["services"]["worker"]["depends_on"].pop("migrate"))
    # a volume of the worker's own: the API could not serve what the worker wrote
    assert "one volume at the same EXPORT_DIR" in problems_with(
        lambda c: c["services"]["worker"].update(volumes=["scratch:/var/lib/qc-collector/exports"]))
    assert "one volume at the same EXPORT_DIR" in problems_with(
        lambda c: c["services"]["api"].update(volumes=["collector-data:/var/lib/qc-collector"]))
    assert "must set EXPORT_DIR" in problems_with(
        lambda c: c["services"]["api"]["environment"].pop("EXPORT_DIR"))


def test_an_expected_failure_that_renders_is_a_problem(tmp_path, monkeypatch):
    folder = tmp_path / "expect-fail"
    folder.mkdir()
    (folder / "fine-values.yaml").write_text("# expect: database connections\n{}\n")
    (folder / "wrong-reason-values.yaml").write_text(
        "# expect: something else\nautoscaling:\n  maxReplicas: 50\n")
    monkeypatch.setattr(check_ops, "expected_failures", lambda: sorted(folder.glob("*-values.yaml")))
    problems = check_ops.check_expected_failures()
    assert any("fine-values.yaml: rendered, but must fail" in p for p in problems)
    assert any("wrong-reason-values.yaml: render failed, but without" in p for p in problems)
