"""`qc-collector import`: map result files locally and post the reports through the
public API — `/ingest/qc` for one report, `/ingest/qc/batch` (500 a request) for more.

Each request carries an Idempotency-Key derived from the format, the options and the
sha256 of every file, so re-running a CI step replays instead of storing twice. The
bodies are deterministic for that: a file without its own time is dated by its mtime.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson

from app.importers import FORMATS, InvalidFile, Options
from app.importers._common import MAX_REPORTS

RETRIED = (409, 429, 503)  # in flight, rate limited, database down: worth waiting for
ATTEMPTS = 5


def idempotency_key(fmt: str, options: Options, digests: list[str], part: int, parts: int) -> str:
    material = orjson.dumps({"format": fmt, "source": options.source, "subject": options.subject,
                             "run_id": options.run_id, "labels": options.labels, "files": digests,
                             "part": part, "parts": parts}, option=orjson.OPT_SORT_KEYS)
    return "import-" + hashlib.sha256(material).hexdigest()


def collect(fmt: str, files: list[Path], options: Options) -> tuple[list[dict[str, Any]], list[str]]:
    """Every file's reports, in order, and the files' sha256 digests."""
    submissions: list[dict[str, Any]] = []
    digests = []
    for path in files:
        raw = path.read_bytes()
        digests.append(hashlib.sha256(raw).hexdigest())
        dated = replace(options, observed_at=datetime.fromtimestamp(path.stat().st_mtime, UTC))
        try:
            submissions += FORMATS[fmt](raw, dated)
        except InvalidFile as exc:
            raise InvalidFile(f"{fmt} ({path})", exc.extra["errors"]) from None
    return submissions, digests


def _post(client: httpx.Client, path: str, body: Any, key: str, out: TextIO) -> httpx.Response:
    data = orjson.dumps(body)
    for attempt in range(1, ATTEMPTS + 1):
        response = client.post(path, content=data, headers={"Idempotency-Key": key,
                                                            "Content-Type": "application/json"})
        if response.status_code not in RETRIED or attempt == ATTEMPTS:
            return response
        wait = min(int(response.headers.get("Retry-After", "1") or 1), 30)
        print(f"{response.status_code} from {path}; retrying in {wait}s", file=out)
        time.sleep(wait)
    raise AssertionError("unreachable")


def run(*, fmt: str, files: list[Path], options: Options, url: str, api_key: str,
        tenant: str | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """0 when every report is stored (or replayed), 1 when the server refused, 2 when a
    file cannot be read."""
    try:
        submissions, digests = collect(fmt, files, options)
    except (InvalidFile, OSError) as exc:
        print(f"error: {exc}", file=err)
        for item in getattr(exc, "extra", {}).get("errors", [])[1:]:
            print(f"  {item.get('pointer') or ''} {item.get('detail')}", file=err)
        return 2
    headers = {"X-Api-Key": api_key, "User-Agent": "qc-collector-import"}
    if tenant:
        headers["X-Tenant"] = tenant
    chunks = [submissions[i:i + MAX_REPORTS] for i in range(0, len(submissions), MAX_REPORTS)]
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        for part, chunk in enumerate(chunks):
            key = idempotency_key(fmt, options, digests, part, len(chunks))
            if len(submissions) == 1:
                response = _post(client, "/ingest/qc", chunk[0], key, err)
            else:
                response = _post(client, "/ingest/qc/batch", {"reports": chunk}, key, err)
            if response.status_code != 201:
                print(f"error: {response.status_code} {response.text[:2000]}", file=err)
                return 1
            answer = response.json()
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            for summary in answer.get("items", [answer]):
                counts = summary["counts"]
                print(f"{'replayed' if replayed else 'stored'} {summary['id']} {summary['status']}"
                      f"/{summary['severity']} pass={counts['pass']} warn={counts['warn']} "
                      f"fail={counts['fail']} {summary['subject']}", file=out)
    return 0
