"""dbt `run_results.json` (+ `manifest.json` when given) -> one report per invocation,
one check per data test / unit test, plus one per model, seed or snapshot that did not
succeed (it explains why its tests are missing).

The manifest adds the tests' own names, the model they test and their configured
severity (`severity: warn|error`). Over the API both files travel in one JSON body,
`{"run_results": {...}, "manifest": {...}}`, or run_results.json alone.
"""

from __future__ import annotations

from typing import Any

from app.importers._common import (
    InvalidFile,
    Options,
    expect,
    finish,
    load_json,
    now_utc,
    obj,
    pointer,
    reports,
    rule_name,
    scalar,
    text,
    timestamp,
)

FORMAT = "dbt"
TESTS = ("test", "unit_test")
# dbt's status of a test -> (status, severity); severity None = the test's configured one
TEST_STATUS: dict[str, tuple[str, str | None]] = {
    "pass": ("pass", None), "warn": ("warn", "warn"), "fail": ("fail", "block"),
    "error": ("fail", "block"), "skipped": ("warn", "info"),
}
NODE_STATUS = {"error": ("fail", "block"), "skipped": ("warn", "info"),
               "partial success": ("warn", "warn")}


def _split(document: Any, manifest: bytes | None) -> tuple[Any, Any]:
    if isinstance(document, dict) and "run_results" in document:
        return document["run_results"], document.get("manifest")
    return document, load_json("dbt manifest.json", manifest) if manifest else None


def _validate(run_results: Any, where: str) -> None:
    expect(FORMAT, isinstance(run_results, dict), where, "expected a run_results.json object")
    metadata = run_results.get("metadata")
    expect(FORMAT, isinstance(metadata, dict), f"{where}/metadata", "missing: run_results.json metadata")
    version = str(metadata.get("dbt_schema_version", ""))
    expect(FORMAT, "run-results" in version, f"{where}/metadata/dbt_schema_version",
           f"not a dbt run-results file (dbt_schema_version '{text(version, 200)}')")
    results = run_results.get("results")
    expect(FORMAT, isinstance(results, list), f"{where}/results", "expected an array of results")
    for index, result in enumerate(results):
        here = f"{where}/results/{index}"
        expect(FORMAT, isinstance(result, dict), here, "expected an object")
        expect(FORMAT, isinstance(result.get("unique_id"), str) and bool(result["unique_id"]),
               f"{here}/unique_id", "expected a string")
        expect(FORMAT, isinstance(result.get("status"), str), f"{here}/status", "expected a string")


def _name(unique_id: str, node: dict[str, Any]) -> str:
    if node.get("name"):
        return str(node["name"])
    parts = unique_id.split(".")
    if parts[0] == "test" and len(parts) >= 3:
        return parts[2]  # test.<package>.<name>.<hash>
    return ".".join(parts[2:]) or unique_id


def _configured_severity(node: dict[str, Any]) -> str:
    configured = str(node.get("config", {}).get("severity") or "error").lower()
    return "warn" if configured == "warn" else "block"  # dbt's default is error


def _check(result: dict[str, Any], nodes: dict[str, Any]) -> dict[str, Any] | None:
    unique_id = result["unique_id"]
    node = obj(nodes.get(unique_id))
    kind = unique_id.split(".")[0]
    dbt_status = result["status"].lower()
    if kind in TESTS:
        status, severity = TEST_STATUS.get(dbt_status, ("fail", "block"))
        check: dict[str, Any] = {"rule": rule_name(_name(unique_id, node), unique_id), "status": status,
                                 "severity": severity or _configured_severity(node)}
        failures = result.get("failures")
        if kind == "test" and (failures is not None or dbt_status in ("pass", "fail", "warn")):
            check["observed"] = scalar(failures if failures is not None else 0)
            check["expected"] = 0
    else:
        if dbt_status not in NODE_STATUS:
            return None
        status, severity = NODE_STATUS[dbt_status]
        check = {"rule": rule_name(f"{kind}:{_name(unique_id, node)}", unique_id),
                 "status": status, "severity": severity, "observed": dbt_status,
                 "expected": "success"}
    if result.get("message"):
        check["message"] = text(result["message"])
    return check


def to_reports(raw: bytes, options: Options) -> list[dict[str, Any]]:
    document = load_json("dbt run_results.json", raw)
    wrapped = isinstance(document, dict) and "run_results" in document
    run_results, manifest = _split(document, options.manifest)
    _validate(run_results, "/run_results" if wrapped else "")
    if manifest is not None:
        expect(FORMAT, isinstance(manifest, dict) and isinstance(manifest.get("nodes", {}), dict),
               "/manifest" if wrapped else "", "expected a manifest.json object with `nodes`")
    nodes = (manifest or {}).get("nodes", {})
    checks = [c for c in (_check(r, nodes) for r in run_results["results"]) if c is not None]
    metadata = run_results["metadata"]
    manifest_meta = (manifest or {}).get("metadata", {})
    project = obj(manifest_meta).get("project_name")
    args = obj(run_results.get("args"))
    own = {"dbt_version": metadata.get("dbt_version"), "command": args.get("which"),
           "target": args.get("target"), "project": project, "format": FORMAT}
    if not checks:
        raise InvalidFile(FORMAT, [{"pointer": pointer("run_results") if wrapped else "/results",
                                    "detail": "no tests in this invocation (and no failed model)"}])
    return finish(FORMAT, reports(
        options=options, subject=f"dbt:{project}" if project else "dbt",
        run_id=metadata.get("invocation_id"),
        observed_at=timestamp(metadata.get("generated_at")) or now_utc(options.observed_at),
        own_labels={k: v for k, v in own.items() if isinstance(v, str)}, checks=checks),
        "no tests in this invocation")
