"""Start a real PostgreSQL (pgserver) and a real gunicorn server for tests, fuzzing,
smoke runs and benchmarks — and stop both, leaving nothing running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.config import ROLES
from app.storage import embedded
from app.storage.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
TENANTS = ("acme", "globex")


def key_for(tenant: str, role: str) -> str:
    return f"{tenant}-{role}-key-0001"


def test_api_keys(tenants: tuple[str, ...] = TENANTS) -> str:
    return ",".join(f"{t}:{r}:{key_for(t, r)}" for t in tenants for r in ROLES)


@dataclass
class LiveDatabase:
    owner_url: str
    app_url: str
    _handle: Any = field(default=None, repr=False)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    # -- fault drills: the embedded server only --------------------------------------

    def postgres_stop(self, mode: str = "fast") -> None:
        """Stop PostgreSQL (`pg_ctl stop -m fast`: sessions are ended, as in a restart)."""
        from pgserver._commands import pg_ctl

        server = self._handle.server
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=server.pgdata, user=server.system_user)

    def postgres_start(self) -> None:
        """Start it again on the same socket and data."""
        self._handle.server.ensure_postgres_running()


def start_database(data_dir: Path | None = None) -> LiveDatabase:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="qcc-db-"))
    db = embedded.start(data_dir)
    try:
        migrate(db.owner_url)
    except BaseException:
        db.stop()  # leave nothing running
        raise
    return LiveDatabase(db.owner_url, db.app_url, db)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """gunicorn's worker processes (children of the master), for fault drills."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(c) for c in children]


def service_env(db: LiveDatabase, run_dir: Path, port: int, workers: int) -> dict[str, str]:
    """What the API and the job worker of one test deployment share."""
    return {
        **os.environ,
        "DATABASE_URL": db.app_url,
        "DATABASE_MIGRATE_URL": db.owner_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "API_KEYS": test_api_keys(),
        "RATE_LIMIT_PER_TENANT": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "prometheus"),
        "COLLECTOR_DATA_DIR": str(run_dir),
        "COLLECTOR_ENV": "test",
    }


def start_server(db: LiveDatabase, *, workers: int = 2, env: dict[str, str] | None = None,
                 run_dir: Path | None = None) -> LiveServer:
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="qcc-srv-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {**service_env(db, run_dir, port, workers), **(env or {})}
    log_path = run_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py")],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()[-4000:]}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become ready:\n{server.log()[-4000:]}")


@dataclass
class LiveWorker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(db: LiveDatabase, *, run_dir: Path, env: dict[str, str] | None = None,
                 name: str = "worker", file_size_limit: int | None = None) -> LiveWorker:
    """`qc-collector worker` sharing the data dir (export files) of a start_server run.
    file_size_limit (bytes, RLIMIT_FSIZE): no file it writes may grow past it, as on a
    full disk (Python ignores SIGXFSZ, so the write fails with EFBIG)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**service_env(db, run_dir, free_port(), 1), **(env or {})}  # PORT unused
    log_path = run_dir / f"{name}.log"

    def limit() -> None:
        if file_size_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT,
                                   env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=limit if file_size_limit is not None else None)
    return LiveWorker(process, log_path)
