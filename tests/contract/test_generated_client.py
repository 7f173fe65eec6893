"""A client generated from the served /openapi.json (openapi-python-client, as `make client`
does) runs the go-live smoke against a real server, raising on any status the contract
does not document: the contract is complete enough to be used as published."""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tools.liveserver import key_for
from tools.make_client import generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qcc(server, tmp_path_factory) -> Any:
    """The freshly generated package (imported from a temporary folder)."""
    out = tmp_path_factory.mktemp("client")
    target = generate(f"{server.url}/openapi.json", out)
    sys.path.insert(0, str(target.parent))
    try:
        yield importlib.import_module("qcc_client")
    finally:
        sys.path.remove(str(target.parent))
        for name in [m for m in sys.modules if m == "qcc_client" or m.startswith("qcc_client.")]:
            del sys.modules[name]


def api(name: str) -> Any:
    return importlib.import_module(f"qcc_client.api.{name}")


def test_one_problem_model_and_no_lost_operation(qcc):
    models = importlib.import_module("qcc_client.models")
    names = [n for n in dir(models) if not n.startswith("_")]
    assert "Problem" in names and not [n for n in names if "Response4" in n or "Response5" in n]
    for needed in ("Export", "ExportFilters", "ReportSummary", "RetentionDryRun", "RetentionCommit"):
        assert needed in names


def test_go_live_smoke_through_the_generated_client(qcc, server, worker, tmp_path):
    with contextlib.ExitStack() as stack:
        smoke(stack, server, tmp_path)


def smoke(stack: contextlib.ExitStack, server: Any, tmp_path: Path) -> None:
    from qcc_client import AuthenticatedClient, Client
    from qcc_client.models import (
        Check,
        ExportFilters,
        ExportRequest,
        ExportRequestFormat,
        Labels,
        Problem,
        ReportSubmission,
        Severity,
    )
    from qcc_client.types import File

    # authenticated as a consumer would: the key in X-Api-Key, no prefix
    admin = stack.enter_context(AuthenticatedClient(
        base_url=server.url, token=key_for("acme", "admin"), prefix="",
        auth_header_name="X-Api-Key", raise_on_unexpected_status=True))
    anonymous = stack.enter_context(Client(base_url=server.url, raise_on_unexpected_status=True))
    marker = f"client-{uuid.uuid4().hex[:12]}"

    # health
    health = api("system.system_get_health").sync_detailed(client=anonymous)
    assert health.status_code == 200 and health.parsed.status.value == "ok"

    # ingest with an Idempotency-Key (the retry replays the first answer)
    labels = Labels.from_dict({"smoke": marker})
    submission = ReportSubmission(
        source="go-live-smoke", subject=marker, observed_at=datetime.now(UTC), labels=labels,
        checks=[Check.from_dict({"rule": "smoke_block", "status": "fail",
                                      "severity": "block"})])
    ingest = api("ingest.ingest_ingest_report")
    first = ingest.sync_detailed(client=admin, body=submission, idempotency_key=marker)
    assert first.status_code == 201, first.content
    report = first.parsed
    again = ingest.sync_detailed(client=admin, body=submission, idempotency_key=marker)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.parsed.id == report.id

    # list, severity filter
    listing = api("reports.reports_list_reports")
    page = listing.sync_detailed(client=admin, label=[f"smoke:{marker}"])
    assert page.status_code == 200 and [r.id for r in page.parsed.items] == [report.id]
    blocks = listing.sync(client=admin, severity=[Severity.BLOCK], label=[f"smoke:{marker}"])
    infos = listing.sync(client=admin, severity=[Severity.INFO], label=[f"smoke:{marker}"])
    assert [r.id for r in blocks.items] == [report.id] and infos.items == []

    # ETag -> 304, a documented status (no UnexpectedStatus), no body
    etag = page.headers["etag"]
    unchanged = listing.sync_detailed(client=admin, label=[f"smoke:{marker}"],
                                      if_none_match=etag)
    assert unchanged.status_code == 304 and unchanged.parsed is None

    # timeline reflects the ingest
    timeline = api("timeline.timeline_get_timeline").sync(client=admin, source=["go-live-smoke"])
    assert timeline.buckets[-1].counts.additional_properties.get("block", 0) >= 1

    # sign, then the bundle bytes verify offline with `qc-collector verify`
    signed = api("evidence.evidence_sign_report").sync_detailed(report.id, client=admin)
    assert signed.status_code in (200, 201) and signed.parsed.report_id == report.id
    bundle = api("evidence.evidence_get_bundle").sync_detailed(report.id, client=admin)
    assert bundle.status_code == 200 and isinstance(bundle.parsed, File)
    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle.parsed.payload.read())
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "qc-collector"), "verify", str(path),
         "--jwks", f"{server.url}/signing-keys"], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # an export, written by the worker, downloaded through its signed URL
    exports = api("exports.exports_create_export")
    request = ExportRequest(format_=ExportRequestFormat.NDJSON, since="-1h",
                            filters=ExportFilters.from_dict({"labels": {"smoke": marker}}))
    accepted = exports.sync_detailed(client=admin, body=request)
    assert accepted.status_code == 202
    get_export = api("exports.exports_get_export")
    deadline = time.monotonic() + 60
    while True:
        export = get_export.sync(accepted.parsed.id, client=admin)
        if export.status.value in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert export.status.value == "succeeded", export.error
    assert export.manifest.rows == 1 and export.filters.to_dict() == {"labels": {"smoke": marker}}
    query = parse_qs(urlsplit(export.download_url).query)
    download = api("exports.exports_download_export").sync_detailed(
        accepted.parsed.id, client=anonymous, expires=int(query["expires"][0]),
        sig=query["sig"][0])
    assert download.status_code == 200 and isinstance(download.parsed, File)
    assert len(download.parsed.payload.read()) == export.manifest.bytes_

    # a refusal is the one Problem model
    nobody = stack.enter_context(Client(base_url=server.url, raise_on_unexpected_status=True))
    refused = listing.sync_detailed(client=nobody)
    assert refused.status_code == 401 and isinstance(refused.parsed, Problem)
