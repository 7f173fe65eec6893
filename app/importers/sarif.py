"""SARIF 2.1.0 (ruff, bandit, semgrep, CodeQL, ...) -> one report per run, one check
per result. The file is validated against the OASIS SARIF 2.1.0 JSON schema (vendored
in schemas/, see schemas/ORIGIN.md) before it is mapped, so a problem is named by its
JSON Pointer in the file."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from app.importers._common import (
    MAX_ERRORS,
    InvalidFile,
    Options,
    file_run_id,
    finish,
    load_json,
    now_utc,
    pointer,
    reports,
    rule_name,
    text,
    timestamp,
)

FORMAT = "sarif"
SCHEMA = Path(__file__).resolve().parent / "schemas" / "sarif-schema-2.1.0.json"
SEVERITY = {"error": "block", "warning": "warn", "note": "info", "none": "info"}
STATUS = {"fail": "fail", "open": "warn", "review": "warn",
          "pass": "pass", "notApplicable": "pass", "informational": "pass"}
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


@cache
def validator() -> Any:
    # Draft 4, as the schema declares; `format` is not enforced (producers write relative
    # references where the schema says "uri").
    return jsonschema_rs.Draft4Validator(orjson.loads(SCHEMA.read_bytes()), validate_formats=False)


def validate(document: Any) -> None:
    errors = []
    for error in validator().iter_errors(document):
        errors.append({"pointer": pointer(*error.instance_path), "detail": text(error.message, 500)})
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise InvalidFile("SARIF 2.1.0", errors)


def _rules(run: dict[str, Any]) -> list[dict[str, Any]]:
    rules = run.get("tool", {}).get("driver", {}).get("rules", [])
    return rules if isinstance(rules, list) else []


def _rule(result: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    index = result.get("ruleIndex", result.get("rule", {}).get("index", -1))
    if isinstance(index, int) and 0 <= index < len(rules):
        return rules[index]
    wanted = result.get("ruleId") or result.get("rule", {}).get("id")
    return next((r for r in rules if r.get("id") == wanted), {}) if wanted else {}


def _message(result: dict[str, Any], rule: dict[str, Any]) -> str:
    message = result.get("message", {})
    body = message.get("text") or message.get("markdown")
    if body is None and message.get("id"):
        strings = rule.get("messageStrings", {}).get(message["id"], {})
        body = strings.get("text") or strings.get("markdown")
    body = body or ""
    arguments = message.get("arguments", [])
    return _PLACEHOLDER.sub(lambda m: str(arguments[int(m.group(1))])
                            if int(m.group(1)) < len(arguments) else m.group(0), body)


def _location(result: dict[str, Any]) -> str | None:
    for location in result.get("locations", []):
        physical = location.get("physicalLocation", {})
        uri = physical.get("artifactLocation", {}).get("uri")
        if not uri:
            continue
        region = physical.get("region", {})
        where = uri
        if "startLine" in region:
            where += f":{region['startLine']}"
            if "startColumn" in region:
                where += f":{region['startColumn']}"
        return where
    return None


def _check(result: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    rule = _rule(result, rules)
    rule_id = result.get("ruleId") or result.get("rule", {}).get("id") or rule.get("id")
    level = result.get("level") or rule.get("defaultConfiguration", {}).get("level") or "warning"
    status = STATUS.get(result.get("kind", "fail"), "fail")
    suppressed = any(s.get("status", "accepted") == "accepted" for s in result.get("suppressions", []))
    if suppressed:
        status = "pass"
    where = _location(result)
    message = _message(result, rule)
    if suppressed:
        message = f"suppressed: {message}"
    check: dict[str, Any] = {"rule": rule_name(rule_id, "result"), "status": status,
                             "severity": SEVERITY.get(level, "warn")}
    if where or message:
        check["message"] = text(f"{where}: {message}" if where and message else where or message)
    if where:
        check["observed"] = text(where)
    return check


def to_reports(raw: bytes, options: Options) -> list[dict[str, Any]]:
    document = load_json("SARIF 2.1.0", raw)
    validate(document)
    fallback_run = file_run_id(raw)
    submissions: list[dict[str, Any]] = []
    for index, run in enumerate(document["runs"]):
        driver = run["tool"]["driver"]
        tool = driver["name"]
        results = run.get("results") or []
        rules = _rules(run)
        checks = [_check(r, rules) for r in results]
        if not checks:  # a clean run is a passing report, not an empty one
            checks = [{"rule": rule_name(tool, "sarif"), "status": "pass", "severity": "info",
                       "message": "no results", "observed": 0, "expected": 0}]
        invocations = run.get("invocations") or [{}]
        observed_at = (timestamp(invocations[0].get("startTimeUtc"))
                       or timestamp(invocations[0].get("endTimeUtc"))
                       or now_utc(options.observed_at))
        provenance = run.get("versionControlProvenance") or [{}]
        repository = provenance[0].get("repositoryUri")
        run_id = run.get("automationDetails", {}).get("id") or f"{fallback_run}#run{index}"
        own = {"tool": tool, "tool_version": driver.get("semanticVersion") or driver.get("version"),
               "format": FORMAT}
        if provenance[0].get("revisionId"):
            own["revision"] = provenance[0]["revisionId"]
        submissions += reports(options=options, subject=repository or f"sarif:{tool}",
                               run_id=run_id, observed_at=observed_at, own_labels=own,
                               checks=checks)
    return finish(FORMAT, submissions, "the SARIF log has no runs")
