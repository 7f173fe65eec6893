"""wrk: make sure it is installed, run it, read its figures."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# One wrk thread: with two on 2 cores (beside the server's two workers) wrk held single
# connections for up to 1.2-1.6 s in 5 of 18 runs at 20,000+ req/s (a path answered from
# memory; never /health at 9,000-13,600 in 6), which its latency correction multiplies
# into a p99 of 0.47-1.22 s. Two Python clients of 16 connections each on the same server saw no
# request over 0.13 s in 10 runs, one wrk thread none over 44 ms in 5 (ad-hoc, 2026-12-03).
THREADS = 1
CONNECTIONS = 32
# Batches of 500 can take well over wrk's default 2 s under load; a timeout is an error.
TIMEOUT = "30s"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ensure_installed() -> None:
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        print(f"[bench] wrk is not on PATH; running: {' '.join(sudo + command)}", file=sys.stderr)
        subprocess.run(sudo + command, check=True, stdout=sys.stderr)
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is still not on PATH after apt-get install")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers plus socket errors
    # CPU per request of the server's workers and of PostgreSQL (µs), when measured
    cpu_us: tuple[float, float] | None = None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(output: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise ValueError(f"wrk output has no {pattern!r}:\n{output}")
        return match

    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return WrkResult(
        requests=int(find(r"(\d+) requests in")[1]),
        rps=float(find(r"Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=_ms(find(r"\s50%\s+(\S+)")[1]),
        p99_ms=_ms(find(r"\s99%\s+(\S+)")[1]),
        errors=errors,
    )


def lua_post(headers: dict[str, str], body: str, counter_marker: str | None = None) -> str:
    """A wrk script POSTing `body`; counter_marker, if given, becomes a per-request number."""
    lines = ['wrk.method = "POST"']
    lines += [f"wrk.headers[ {_lua(name)} ] = {_lua(value)}" for name, value in headers.items()]
    if counter_marker is None:
        lines.append(f"wrk.body = {_lua(body)}")
        return "\n".join(lines) + "\n"
    head, tail = body.split(counter_marker)
    lines += [
        f"local head, tail = {_lua(head)}, {_lua(tail)}",
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        "  return wrk.format(nil, nil, nil, head .. n .. tail)",
        "end",
    ]
    return "\n".join(lines) + "\n"


def _lua(text: str) -> str:
    """A Lua long-bracket string literal that cannot be closed early by `text`."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def _command(url: str, seconds: float, headers: dict[str, str] | None,
             script_path: Path | None) -> list[str]:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency",
               "--timeout", TIMEOUT]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script_path is not None:
        command += ["-s", str(script_path)]
    return [*command, url]


def _result(stdout: str, stderr: str) -> WrkResult:
    # wrk reports a broken script on stderr and then runs anyway (with plain GETs).
    if stderr.strip():
        raise RuntimeError(f"wrk: {stderr.strip()}")
    return parse(stdout)


def _script_file(tmp: str, script: str | None) -> Path | None:
    if script is None:
        return None
    path = Path(tmp) / "script.lua"
    path.write_text(script)
    return path


def run(url: str, *, seconds: float, headers: dict[str, str] | None = None,
        script: str | None = None) -> WrkResult:
    with tempfile.TemporaryDirectory(prefix="qcc-wrk-") as tmp:
        command = _command(url, seconds, headers, _script_file(tmp, script))
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    return _result(done.stdout, done.stderr)


class Background:
    """wrk running until stop() (at most `limit_seconds`): on SIGINT wrk ends its run and
    prints its figures as after a timed one.

        with wrk.Background(url, limit_seconds=600, script=...) as load:
            ...                   # what the load should overlap
            result = load.stop()
    """

    def __init__(self, url: str, *, limit_seconds: float, headers: dict[str, str] | None = None,
                 script: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="qcc-wrk-")
        command = _command(url, limit_seconds, headers, _script_file(self._tmp.name, script))
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.poll() is None:  # left by an error: no figures wanted
            self._process.kill()
        self._process.communicate()
        self._tmp.cleanup()

    def stop(self) -> WrkResult:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        stdout, stderr = self._process.communicate(timeout=60)
        if self._process.returncode != 0:
            raise RuntimeError(f"wrk exited with {self._process.returncode}: {stderr.strip()}")
        return _result(stdout, stderr)
