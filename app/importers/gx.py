"""Great Expectations validation results -> one report per validation (an expectation
suite run against one batch), one check per expectation, with its observed value.

Accepted: a checkpoint result (`run_results` keyed by validation id, as
`CheckpointResult.to_json_dict()` writes it, values either the validation result or
`{"validation_result": ...}`; or `validation_results` as `describe_dict()` writes it), a
single suite validation result (`{"success", "results", "statistics", ...}`), or a list
of them.
"""

from __future__ import annotations

from typing import Any

from app.importers._common import (
    InvalidFile,
    Options,
    expect,
    file_run_id,
    finish,
    load_json,
    now_utc,
    obj,
    reports,
    rule_name,
    scalar,
    text,
    timestamp,
)

FORMAT = "gx"
SEVERITY = {"critical": "block", "warning": "warn", "info": "info"}
_NOT_EXPECTED = ("column", "batch_id", "result_format", "include_config", "catch_exceptions",
                 "meta", "row_condition", "condition_parser")


def _validations(document: Any) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(pointer, validation, run_id object) for each validation in the file."""
    if isinstance(document, list):
        return [(f"/{i}", v, {}) for i, v in enumerate(document)]
    expect(FORMAT, isinstance(document, dict), "", "expected a JSON object or array")
    if isinstance(document.get("run_results"), dict):
        run = obj(document.get("run_id"))
        out = []
        for key, value in document["run_results"].items():
            inner = value.get("validation_result", value) if isinstance(value, dict) else value
            where = f"/run_results/{key.replace('~', '~0').replace('/', '~1')}"
            if isinstance(value, dict) and "validation_result" in value:
                where += "/validation_result"
            out.append((where, inner, run))
        return out
    if isinstance(document.get("validation_results"), list):
        return [(f"/validation_results/{i}", v, {}) for i, v in enumerate(document["validation_results"])]
    return [("", document, {})]


def _expectations(validation: dict[str, Any], where: str) -> tuple[str, list[Any]]:
    for key in ("results", "expectations"):
        if isinstance(validation.get(key), list):
            return f"{where}/{key}", validation[key]
    raise InvalidFile(FORMAT, [{"pointer": f"{where}/results",
                                "detail": "not a Great Expectations validation result "
                                          "(no `results` array)"}])


def _expected(kwargs: dict[str, Any]) -> Any:
    if "min_value" in kwargs or "max_value" in kwargs:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        parts = ([f">= {low}"] if low is not None else []) + ([f"<= {high}"] if high is not None else [])
        return ", ".join(parts) or None
    if "value" in kwargs:
        return scalar(kwargs["value"])
    rest = {k: v for k, v in kwargs.items() if k not in _NOT_EXPECTED}
    return scalar(rest) if rest else None


def _check(item: dict[str, Any], where: str) -> dict[str, Any]:
    config = obj(item.get("expectation_config")) or item
    kind: str = config.get("type") or config.get("expectation_type") or ""
    expect(FORMAT, isinstance(kind, str) and bool(kind), f"{where}/expectation_config/type",
           "expected the expectation's type")
    expect(FORMAT, isinstance(item.get("success"), bool), f"{where}/success", "expected true or false")
    kwargs = obj(config.get("kwargs"))
    column = kwargs.get("column")
    if column is None and isinstance(kwargs.get("column_list"), list):
        column = ",".join(map(str, kwargs["column_list"]))
    result = obj(item.get("result"))
    exception = obj(item.get("exception_info"))
    raised = bool(exception.get("raised_exception"))
    meta = obj(config.get("meta"))
    configured = str(config.get("severity") or meta.get("severity") or "critical").lower()
    severity = "block" if raised else SEVERITY.get(configured, "block")
    check: dict[str, Any] = {
        "rule": rule_name(f"{kind}:{column}" if column is not None else kind, kind),
        "status": "pass" if item["success"] else "fail",
        "severity": severity,
    }
    if "observed_value" in result:
        check["observed"] = scalar(result["observed_value"])
    elif "unexpected_count" in result:
        check["observed"] = scalar(result["unexpected_count"])
    expected = _expected(kwargs)
    if expected is not None:
        check["expected"] = expected
    if raised:
        check["status"] = "fail"
        check["message"] = text(f"exception: {exception.get('exception_message') or 'raised'}")
    elif result.get("unexpected_count") is not None:
        count = result["unexpected_count"]
        total = result.get("element_count")
        share = result.get("unexpected_percent")
        message = f"{count} unexpected" + (f" of {total}" if total is not None else "")
        if isinstance(share, int | float):
            message += f" ({share:.4g}%)"
        check["message"] = text(message)
    return check


def to_reports(raw: bytes, options: Options) -> list[dict[str, Any]]:
    document = load_json("Great Expectations", raw)
    fallback_run = file_run_id(raw)
    submissions: list[dict[str, Any]] = []
    for where, validation, run in _validations(document):
        expect(FORMAT, isinstance(validation, dict), where, "expected a validation result object")
        items_at, items = _expectations(validation, where)
        checks = []
        for index, item in enumerate(items):
            expect(FORMAT, isinstance(item, dict), f"{items_at}/{index}", "expected an object")
            checks.append(_check(item, f"{items_at}/{index}"))
        meta = obj(validation.get("meta"))
        suite = (validation.get("suite_name") or meta.get("expectation_suite_name")
                 or validation.get("expectation_suite_name") or "suite")
        batch = obj(meta.get("active_batch_definition"))
        asset = batch.get("data_asset_name")
        datasource = batch.get("datasource_name")
        run_meta = obj(meta.get("run_id")) or run
        run_name, run_time = run_meta.get("run_name"), run_meta.get("run_time")
        observed_at = (timestamp(meta.get("validation_time")) or timestamp(run_time)
                       or now_utc(options.observed_at))
        subject = f"{datasource}.{asset}" if datasource and asset else (asset or f"gx:{suite}")
        own = {"suite": suite, "gx_version": meta.get("great_expectations_version"),
               "checkpoint": meta.get("checkpoint_name"), "format": FORMAT}
        submissions += reports(options=options, subject=str(subject),
                               run_id=run_name or run_time or fallback_run,
                               observed_at=observed_at,
                               own_labels={k: v for k, v in own.items() if isinstance(v, str)},
                               checks=checks)
    return finish(FORMAT, submissions, "the file holds no expectation results")
