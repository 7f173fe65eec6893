"""The security suite's recorder: every HTTP exchange the test session makes through httpx
is written to a ledger (response bodies, and the credentials and channel secrets that
requests carried), and every server and worker that tools/liveserver.py starts adds its
secret environment and its log file to it. tests/security/test_zz_secrets_absent.py runs
last and searches all of it.

Loaded at collection, so the recorder is in place before the first test runs, whichever
directory that test is in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

LAST = "tests/security/test_zz_secrets_absent.py"


def pytest_configure(config: pytest.Config) -> None:
    base = Path(config.rootpath) / "var" / "test-artifacts" / "security"
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob("ledger-*.jsonl"):  # earlier sessions' (test secrets only)
        old.unlink(missing_ok=True)
    ledger = base / f"ledger-{os.getpid()}.jsonl"
    os.environ["QCC_SECRET_LEDGER"] = str(ledger)
    _record_httpx(ledger)
    _record_cli(ledger)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secrets search runs after every other test of the session."""
    last = [i for i in items if i.nodeid.startswith(LAST)]
    items[:] = [i for i in items if not i.nodeid.startswith(LAST)] + last


def _write(ledger: Path, entry: dict[str, Any]) -> None:
    with open(ledger, "ab") as out:
        out.write(orjson.dumps(entry) + b"\n")


def _exchange(request: httpx.Request, response: httpx.Response) -> dict[str, Any]:
    cookies = [c for c in request.headers.get_list("cookie")]
    set_cookies = response.headers.get_list("set-cookie")
    try:
        sent = request.content[:200_000].decode("utf-8", "replace")
    except httpx.RequestNotRead:
        sent = ""
    body = b""
    try:
        body = response.content
    except httpx.ResponseNotRead:
        pass
    return {"kind": "http", "method": request.method, "url": str(request.url),
            "api_key": request.headers.get("x-api-key"), "cookies": cookies,
            "set_cookies": set_cookies, "sent": sent, "status": response.status_code,
            "body": body[:2_000_000].decode("utf-8", "replace")
            if not response.headers.get("content-type", "").startswith(
                ("application/zip", "application/gzip", "application/octet-stream")) else ""}


def _record_httpx(ledger: Path) -> None:
    if getattr(httpx.Client.send, "_qcc_recorded", False):
        return
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _write(ledger, _exchange(request, response))
        return response

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _write(ledger, _exchange(request, response))
        return response

    send._qcc_recorded = True  # type: ignore[attr-defined]
    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]


def _record_cli(ledger: Path) -> None:
    """Output of every `python -m app.cli ...` the suite runs (captured by the tests)."""
    if getattr(subprocess.run, "_qcc_recorded", False):
        return
    original = subprocess.run

    def run(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        command = args[0] if args else kwargs.get("args")
        if isinstance(command, (list, tuple)) and "app.cli" in [str(c) for c in command]:
            def text(value: Any) -> str:
                if isinstance(value, bytes):
                    return value.decode("utf-8", "replace")
                return value or ""
            _write(ledger, {"kind": "cli", "args": [str(c) for c in command][2:4],
                            "output": text(result.stdout) + text(result.stderr)})
        return result

    run._qcc_recorded = True  # type: ignore[attr-defined]
    subprocess.run = run  # type: ignore[assignment]
