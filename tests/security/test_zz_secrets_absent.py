"""Secrets proven absent: runs last in the session (tests/security/conftest.py orders it),
after every other test's servers, workers and CLI runs have written their logs, and
searches every log line and every recorded response body for every secret the suite used.

The secrets come from the session's ledger (tests/security/conftest.py): each server's
and worker's secret settings (API_KEYS, METRICS_TOKEN, SIGNING_KEY, EXPORT_SIGN_SECRET(S),
ENCRYPTION_KEY(S), SMTP_PASSWORD, system alert channels) and the development secrets they
generated in their data dirs; every X-Api-Key and session cookie sent or set; every alert
channel URL, routing key and webhook secret sent; every key secret and download-link
signature the API issued. A secret the API issues (a new key, a signed link) may appear in
the one kind of answer that hands it out — nowhere else, and in no log."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest

from tools.liveserver import LiveServer, key_for

MIN_LENGTH = 12  # shorter strings are not secrets worth the name (and would match by chance)
# Test secrets like "s" * 20 match any echoed run of one letter (a 422 quoting a long
# field): a secret is searched when it has at least this many distinct characters.
MIN_DISTINCT = 5
ISSUING = re.compile(r"/admin/keys(/[^/]+/rotate)?$|/exports(/[^/]+)?$")


def ledger_entries() -> list[dict[str, Any]]:
    path = Path(os.environ.get("QCC_SECRET_LEDGER", ""))
    if not path.is_file():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _pem_lines(pem: str) -> Iterator[str]:
    for line in pem.splitlines():
        if line and not line.startswith("-----"):
            yield line


def _channel_secrets(value: Any) -> Iterator[str]:
    """URLs, routing keys and webhook secrets anywhere in a sent alert rule."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("url", "routing_key", "secret") and isinstance(item, str):
                yield item
                if key == "url":
                    path = urlsplit(item).path
                    if len(path) >= MIN_LENGTH:
                        yield path  # a webhook's token lives in its path
            else:
                yield from _channel_secrets(item)
    elif isinstance(value, list):
        for item in value:
            yield from _channel_secrets(item)


def gather(entries: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str], list[Path], int]:
    """(secrets never to be shown anywhere, secrets the API issues, log files) — each
    secret mapped to what it is (for the failure message; never printed itself)."""
    hidden: dict[str, str] = {}
    issued: dict[str, str] = {}
    logs: list[Path] = []
    for entry in entries:
        if entry["kind"] == "process":
            logs.append(Path(entry["log"]))
            for name, value in entry["env"].items():
                if name == "API_KEYS":
                    for item in value.split(","):
                        hidden[item.rsplit(":", 1)[-1]] = "API_KEYS secret"
                elif name == "SIGNING_KEY":
                    hidden.update({line: "SIGNING_KEY" for line in _pem_lines(value)})
                elif name.endswith("_OLD") or name == "EXPORT_SIGN_SECRETS_OLD":
                    hidden.update({v: name for v in value.split(",")})
                else:
                    hidden[value] = name
            data_dir = Path(entry["data_dir"]) if entry["data_dir"] else None
            for name in ("encryption-key", "export-sign-secret", "signing-key.pem"):
                generated = data_dir / name if data_dir else None
                if generated and generated.is_file():
                    text = generated.read_text(errors="replace")
                    for line in _pem_lines(text) if name.endswith(".pem") else [text.strip()]:
                        hidden[line] = f"generated {name}"
        elif entry["kind"] == "http":
            if entry["api_key"]:
                hidden[entry["api_key"]] = "X-Api-Key sent"
            for header in entry["cookies"] + entry["set_cookies"]:
                for name, value in re.findall(r"([\w-]*qcc_session)=([^;,\s]+)", header):
                    hidden[value] = f"{name} cookie"
            sent: Any = None
            try:
                sent = orjson.loads(entry["sent"]) if entry["sent"] else None
            except orjson.JSONDecodeError:
                pass
            path = urlsplit(entry["url"]).path
            if isinstance(sent, dict) and isinstance(sent.get("api_key"), str):
                hidden[sent["api_key"]] = "console login key"
            if path.startswith("/alert-rules") and sent is not None:
                hidden.update({s: "alert channel secret" for s in _channel_secrets(sent)})
            if ISSUING.search(path) and entry["body"]:
                for secret in re.findall(r'"secret":"([^"]+)"', entry["body"]):
                    issued[secret] = "issued API key secret"
                for sig in re.findall(r"[?&]sig=([0-9a-f]+)", entry["body"]):
                    issued[sig] = "download link signature"
            query = dict(parse_qsl(urlsplit(entry["url"]).query))
            if "sig" in query:
                issued[query["sig"]] = "download link signature"
        elif entry["kind"] == "cli":
            for secret in re.findall(r'"secret": "([^"]+)"', entry["output"]):
                issued[secret] = "issued API key secret (CLI)"
    for tenant in ("acme", "globex"):
        for role in ("viewer", "operator", "auditor", "admin"):
            hidden[key_for(tenant, role)] = "tools/liveserver.py key_for key"
    # a key the API issued and the suite then used is still one that is shown once
    hidden = {s: what for s, what in hidden.items() if s not in issued}
    keep = lambda found: {s: what for s, what in found.items()  # noqa: E731
                          if len(s) >= MIN_LENGTH and len(set(s)) >= MIN_DISTINCT}
    trivial = len({s for s in (hidden | issued) if len(set(s)) < MIN_DISTINCT})
    return keep(hidden), keep(issued), sorted(set(logs)), trivial


def test_no_secret_appears_in_any_log_line_or_response_body(
        server: LiveServer, worker: Any, http: httpx.Client,
        request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    # a login and a read, so that even alone this test has something to search
    http.post("/bff/login", json={"api_key": key_for("acme", "viewer")})
    http.get("/reports", headers={"X-Api-Key": key_for("acme", "viewer")})
    entries = ledger_entries()
    hidden, issued, logs, trivial = gather(entries)
    assert hidden and logs, "the recorder saw no server or secret (tests/security/conftest.py)"

    hits: list[str] = []
    lines = files = 0
    for log in logs:
        if not log.is_file():
            continue
        files += 1
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            lines += 1
            for secret, what in (hidden | issued).items():
                if secret in line:
                    hits.append(f"{what} in {log.name}:{number}")
    cli = [e for e in entries if e["kind"] == "cli"]
    for entry in cli:
        for number, line in enumerate(entry["output"].splitlines(), 1):
            lines += 1
            for secret, what in hidden.items():
                if secret in line:
                    hits.append(f"{what} in the output of `qc-collector {' '.join(entry['args'])}`"
                                f":{number}")
    bodies = body_bytes = 0
    for entry in entries:
        if entry["kind"] != "http" or not entry["body"]:
            continue
        bodies += 1
        body_bytes += len(entry["body"])
        path = urlsplit(entry["url"]).path
        may_issue = bool(ISSUING.search(path))
        for secret, what in hidden.items():
            if secret in entry["body"]:
                hits.append(f"{what} in the body of {entry['method']} {path} ({entry['status']})")
        if not may_issue:
            for secret, what in issued.items():
                if secret in entry["body"]:
                    hits.append(f"{what} in the body of {entry['method']} {path}")
    summary = (f"secrets search: {lines} log lines in {files} log files and {len(cli)} CLI runs, "
               f"{bodies} response bodies ({body_bytes} bytes), {len(hidden) + len(issued)} "
               f"secrets ({len(hidden)} never shown, {len(issued)} issued once; {trivial} "
               f"one-letter test values not searched): {len(hits)} hits")
    with capsys.disabled():  # in the gate's output, pass or fail
        print(f"\n{summary}")
    out = Path(request.config.rootpath) / "var" / "test-artifacts" / "security"
    out.mkdir(parents=True, exist_ok=True)
    (out / "secrets-search.txt").write_text(summary + "\n" + "\n".join(hits[:200]) + "\n")
    assert not hits, f"{len(hits)} secret(s) found:\n" + "\n".join(hits[:50])
