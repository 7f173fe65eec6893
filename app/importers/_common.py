"""What every importer shares: the options, the file error, and the clamps that keep a
mapped report inside the contract's ReportSubmission (lengths, scalars, NUL bytes,
1000 checks per report, 500 reports per file)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from app.errors import Unprocessable

MAX_CHECKS = 1000  # per report (ReportSubmission.checks)
MAX_REPORTS = 500  # per file (BatchSubmission.reports)
MAX_LABELS = 20
MAX_ERRORS = 20
SAFE_INTEGER = 9007199254740991
RULE_MAX, MESSAGE_MAX, SUBJECT_MAX, RUN_ID_MAX = 100, 2000, 200, 200
LABEL_KEY_MAX, LABEL_VALUE_MAX = 64, 256


class InvalidFile(Unprocessable):
    """The imported file cannot be read as its format; `errors` point into that file
    (a JSON Pointer for JSON files, an element path plus line and column for XML)."""

    def __init__(self, fmt: str, errors: list[dict[str, Any]]) -> None:
        first = errors[0]
        where = first.get("pointer") or ""
        if "line" in first:
            where = f"line {first['line']}" + (f", column {first['column']}" if "column" in first else "")
        detail = f"not a valid {fmt} file" + (f" at {where}" if where else "") + f": {first['detail']}"
        super().__init__(detail)
        self.extra = {"errors": errors[:MAX_ERRORS]}


@dataclass(frozen=True, slots=True)
class Options:
    """What the caller adds to a file: `source` always; `subject`, `run_id` and `labels`
    override or extend what the file says; `observed_at` is used when the file has no
    time of its own. `manifest` is dbt's manifest.json (test names, severity config)."""

    source: str
    observed_at: datetime
    subject: str | None = None
    run_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    manifest: bytes | None = None


def text(value: Any, limit: int = MESSAGE_MAX) -> str:
    """A string the contract accepts: no NUL, at most `limit` characters ("…" marks a cut)."""
    out = str(value).replace("\x00", "")
    return out if len(out) <= limit else out[: limit - 1] + "…"


def rule_name(value: Any, fallback: str) -> str:
    """Check names keep their most specific end (a test's own name) when cut."""
    name = " ".join(str(value or "").replace("\x00", "").split()) or fallback
    return name if len(name) <= RULE_MAX else "…" + name[-(RULE_MAX - 1):]


def scalar(value: Any) -> Any:
    """Any value as a JSON scalar within the contract (numbers within ±2^53)."""
    if value is None or isinstance(value, bool | str):
        return text(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return value if abs(value) <= SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) <= SAFE_INTEGER else str(value)
    return text(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode())


def timestamp(raw: Any) -> str | None:
    """An RFC 3339 UTC time from a file's time, or None. A time without an offset
    (Surefire, Jest) is taken as UTC."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def now_utc(moment: datetime) -> str:
    stamp = timestamp(moment.isoformat())
    assert stamp is not None
    return stamp


def file_run_id(raw: bytes) -> str:
    """The run id of a file that names none: its content hash (stable across retries)."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def labels(own: dict[str, Any], options: Options) -> dict[str, str]:
    """The caller's labels win; the format's own labels fill up to 20."""
    merged: dict[str, str] = {}
    for key, value in options.labels.items():
        merged[text(key, LABEL_KEY_MAX)] = text(value, LABEL_VALUE_MAX)
    for key, value in own.items():
        if value is None or value == "" or len(merged) >= MAX_LABELS:
            continue
        merged.setdefault(text(key, LABEL_KEY_MAX), text(value, LABEL_VALUE_MAX))
    return dict(list(merged.items())[:MAX_LABELS])


def reports(*, options: Options, subject: str, run_id: str | None, observed_at: str,
            own_labels: dict[str, Any], checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One submission, or several (label `part` = "i/n") when there are over 1000 checks."""
    parts = [checks[i:i + MAX_CHECKS] for i in range(0, len(checks), MAX_CHECKS)] or [[]]
    out = []
    for index, part in enumerate(parts, start=1):
        extra = dict(own_labels)
        if len(parts) > 1:
            extra = {"part": f"{index}/{len(parts)}", **extra}
        submission: dict[str, Any] = {
            "source": options.source,
            "subject": text(options.subject or subject, SUBJECT_MAX) or "unnamed",
            "observed_at": observed_at,
            "labels": labels(extra, options),
            "checks": part,
        }
        run = options.run_id or run_id
        if run:
            submission["run_id"] = text(run, RUN_ID_MAX)
        out.append(submission)
    return out


def finish(fmt: str, submissions: list[dict[str, Any]], empty: str) -> list[dict[str, Any]]:
    """The file's reports, or a 422 when it holds nothing to report or too much."""
    kept = [s for s in submissions if s["checks"]]
    if not kept:
        raise InvalidFile(fmt, [{"pointer": "", "detail": empty}])
    if len(kept) > MAX_REPORTS:
        raise InvalidFile(fmt, [{"pointer": "", "detail":
                                 f"the file maps to {len(kept)} reports; at most {MAX_REPORTS} "
                                 "per import (split the file)"}])
    return kept


def load_json(fmt: str, raw: bytes) -> Any:
    """UTF-8 JSON (RFC 8259); a parse error names its line and column."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidFile(fmt, [{"pointer": "", "line": 1, "column": 1,
                                 "detail": "the file is UTF-16 (byte order mark); JSON must be UTF-8"}])
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte order mark, as some Windows tools write
    if not raw.strip():
        raise InvalidFile(fmt, [{"pointer": "", "detail": "the file is empty"}])
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidFile(fmt, [{"pointer": "", "line": exc.lineno, "column": exc.colno,
                                 "detail": f"malformed JSON (UTF-8 required): {exc.msg}"}]) from None


def obj(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one (optional parts of a file)."""
    return value if isinstance(value, dict) else {}


def pointer(*parts: Any) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in parts)


def expect(fmt: str, condition: bool, where: str, detail: str) -> None:
    if not condition:
        raise InvalidFile(fmt, [{"pointer": where, "detail": detail}])
