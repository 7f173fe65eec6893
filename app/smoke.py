"""Go-live smoke: the PRODUCT.md checks a running server supports, one line per check.

Uses only the standard library so it runs from any image that has the service.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Smoke:
    url: str
    api_key: str
    tenant: str | None = None
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> Answer:
        sent: dict[str, str] = {"X-Api-Key": self.api_key, **(headers or {})}
        if self.tenant:
            sent["X-Tenant"] = self.tenant
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("the URL must be http:// or https://")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            self.url.rstrip("/") + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(  # noqa: S310  # nosec B310 # scheme checked above: http(s)
                    request, timeout=15) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def check(self, name: str, step: Callable[[], str]) -> None:
        try:
            detail = step()
            self.results.append((name, True, detail))
        except Exception as exc:  # a failed check is reported, the others still run
            self.results.append((name, False, str(exc) or exc.__class__.__name__))


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def run(url: str, api_key: str, tenant: str | None = None) -> Smoke:
    smoke = Smoke(url, api_key, tenant)
    marker = f"smoke-{uuid.uuid4().hex[:12]}"
    state: dict[str, Any] = {}

    def health() -> str:
        answer = smoke.call("GET", "/health")
        expect(answer.status == 200, f"status {answer.status}")
        return "200"

    def ingest() -> str:
        body = {"source": "go-live-smoke", "subject": marker,
                "observed_at": datetime.now(UTC).isoformat(),
                "labels": {"smoke": marker},
                "checks": [{"rule": "smoke_block", "status": "fail", "severity": "block"}]}
        answer = smoke.call("POST", "/ingest/qc", body)
        expect(answer.status == 201, f"status {answer.status}: {answer.body[:200]!r}")
        state["report"] = answer.json()
        return f"201 {state['report']['id']}"

    def lists_it() -> str:
        answer = smoke.call("GET", f"/reports?label=smoke:{marker}")
        ids = [item["id"] for item in answer.json()["items"]]
        expect(state["report"]["id"] in ids, "the ingested report is not listed")
        return f"{len(ids)} item(s)"

    def severity_filter() -> str:
        answer = smoke.call("GET", f"/reports?severity=block&label=smoke:{marker}")
        items = answer.json()["items"]
        expect(bool(items) and all(i["severity"] == "block" for i in items), "filter leaked")
        other = smoke.call("GET", f"/reports?severity=info&label=smoke:{marker}").json()["items"]
        expect(other == [], "severity=info returned the block report")
        return "block only"

    def etag_304() -> str:
        first = smoke.call("GET", f"/reports?label=smoke:{marker}")
        tag = first.headers.get("ETag") or first.headers.get("etag") or ""
        expect(bool(tag), "no ETag")
        again = smoke.call("GET", f"/reports?label=smoke:{marker}", headers={"If-None-Match": tag})
        expect(again.status == 304, f"status {again.status}")
        return "304"

    def timeline() -> str:
        answer = smoke.call("GET", "/timeline?bucket=hour&source=go-live-smoke")
        expect(answer.status == 200, f"status {answer.status}")
        last = answer.json()["buckets"][-1]
        expect(last["counts"].get("block", 0) >= 1, "the ingest is not in the current bucket")
        return f"current bucket {last['counts']}"

    def sign() -> str:
        answer = smoke.call("POST", f"/reports/{state['report']['id']}/sign")
        expect(answer.status in (200, 201),
               f"status {answer.status} (signing needs an admin or auditor key)")
        state["signature"] = answer.json()
        return f"{answer.status} key {state['signature']['signing_key_id']}"

    def bundle() -> str:
        from app.services.evidence.verification import verify_bundle

        answer = smoke.call("GET", f"/reports/{state['report']['id']}/bundle.zip")
        expect(answer.status == 200, f"status {answer.status}")
        jwks = smoke.call("GET", "/signing-keys").json()
        result = verify_bundle(answer.body, jwks)
        failed = [f"{name}: {detail}" for name, ok, detail in result.checks if not ok]
        expect(result.ok, "; ".join(failed))
        return f"{len(answer.body)} bytes, {len(result.checks)} checks pass"

    started = time.monotonic()
    smoke.check("health", health)
    smoke.check("ingest sample", ingest)
    for name, step in (("reports lists it", lists_it), ("severity=block filters", severity_filter),
                       ("ETag then 304", etag_304), ("timeline reflects the ingest", timeline),
                       ("sign", sign), ("bundle downloads and verifies", bundle)):
        if "report" in state:
            smoke.check(name, step)
        else:
            smoke.results.append((name, False, "skipped: ingest failed"))
    smoke.results.append(("total", all(ok for _, ok, _ in smoke.results),
                          f"{time.monotonic() - started:.2f}s"))
    return smoke
