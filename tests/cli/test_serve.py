"""`qc-collector serve` (what `make serve` runs): embedded PostgreSQL, a demo key, data
that survives a restart, and a clean stop that leaves no database running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.factories import report
from tools.liveserver import free_port


def start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DATABASE_MIGRATE_URL", "API_KEYS")}
    env.update(COLLECTOR_DATA_DIR=str(data_dir), PORT=str(port), WEB_CONCURRENCY="1")
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not become ready")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=40)
    return out


def workers(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """serve's job worker (`app.cli worker`), if it is running."""
    found = []
    for child in psutil.Process(proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "worker" in child.cmdline():
                found.append(child)
        except psutil.Error:  # exited meanwhile
            pass
    return found


def postgres_running(data_dir: Path) -> bool:
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres" and str(data_dir) in " ".join(p.info["cmdline"] or []):
            return True
    return False


def test_serve_embedded_demo_key_restart_and_clean_stop(tmp_path):
    data_dir, port = tmp_path / "var", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(data_dir, port)
    try:
        wait_ready(url, proc)
        demo_key = (data_dir / "demo-api-key").read_text().strip()
        posted = httpx.post(f"{url}/ingest/qc", json=report(), headers={"X-Api-Key": demo_key})
        assert posted.status_code == 201
        # serve supervises its job worker: killed, it is started again
        [killed] = workers(proc)
        killed.kill()
        deadline = time.monotonic() + 15
        while [w.pid for w in workers(proc)] in ([], [killed.pid]):
            assert time.monotonic() < deadline, "serve did not start its worker again"
            time.sleep(0.2)
    finally:
        out = stop(proc)
    assert f"curl -s -X POST {url}/ingest/qc -H 'X-Api-Key: {demo_key}'" in out
    assert "the worker exited (-9); starting it again" in out
    assert proc.returncode == 0
    assert not postgres_running(data_dir), "stopping serve must stop its PostgreSQL"

    proc = start(data_dir, port)
    try:
        wait_ready(url, proc)
        again = httpx.get(f"{url}/reports/{posted.json()['id']}",
                          headers={"X-Api-Key": demo_key})
        assert again.status_code == 200 and again.json()["subject"] == posted.json()["subject"]
    finally:
        stop(proc)
    assert not postgres_running(data_dir)
