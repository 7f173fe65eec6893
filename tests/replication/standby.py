"""A real streaming replica of the embedded PostgreSQL, made with its own binaries:
`pg_basebackup -R` from the primary's socket, then a second postmaster on its own socket
directory and port. Run as the OS user pgserver runs the primary as (root -> `pgserver`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgserver._commands import POSTGRES_BIN_PATH


def _system_user() -> str | None:
    return "pgserver" if os.geteuid() == 0 else None


def _run(args: list[str], *, timeout: float = 60) -> None:
    user = _system_user()
    done = subprocess.run([str(POSTGRES_BIN_PATH / args[0]), *args[1:]], user=user,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")


def _with(url: str, **params: str) -> str:
    parsed = psycopg.conninfo.conninfo_to_dict(url)
    parsed.update(params)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in parsed.items()})


@dataclass
class Standby:
    pgdata: Path
    socket_dir: Path
    port: int
    primary_owner_url: str
    running: bool = False

    def url(self, primary_url: str) -> str:
        """`primary_url` (same user and database) pointed at the standby."""
        return _with(primary_url, host=str(self.socket_dir), port=str(self.port))

    @property
    def owner_url(self) -> str:
        return self.url(self.primary_owner_url)

    def start(self) -> None:
        _run(["pg_ctl", "-D", str(self.pgdata), "-w", "-t", "30", "-l", str(self.pgdata / "log"),
              "-o", f'-h "" -k {self.socket_dir} -p {self.port}', "start"])
        self.running = True

    def stop(self) -> None:
        if self.running:
            _run(["pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop"])
            self.running = False

    def promote(self) -> None:
        _run(["pg_ctl", "-D", str(self.pgdata), "-w", "promote"])

    def wait_caught_up(self, timeout: float = 20) -> None:
        """Until the standby has replayed everything the primary had written when called."""
        with psycopg.connect(self.primary_owner_url, autocommit=True) as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.owner_url, autocommit=True) as standby:
            while time.monotonic() < deadline:
                row = standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                      (target,)).fetchone()
                if row and row[0]:
                    return
                time.sleep(0.02)
        raise TimeoutError(f"standby did not replay up to {target} within {timeout}s")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def make_standby(primary_owner_url: str, *, port: int = 5433) -> Standby:
    """Base-backs-up the primary (whose owner URL names its socket directory) and starts
    a hot standby streaming from it."""
    primary = psycopg.conninfo.conninfo_to_dict(primary_owner_url)
    root = Path(tempfile.mkdtemp(prefix="qcc-standby-"))
    pgdata, socket_dir = root / "pgdata", root / "sock"
    socket_dir.mkdir()
    user = _system_user()
    if user is not None:
        from pgserver.utils import ensure_prefix_permissions
        ensure_prefix_permissions(socket_dir)
        shutil.chown(root, user)
        shutil.chown(socket_dir, user)
    # -R writes standby.signal and primary_conninfo (the primary's socket, as postgres);
    # initdb's pg_hba trusts local replication connections.
    _run(["pg_basebackup", "-D", str(pgdata), "-R", "-X", "stream", "-c", "fast",
          "-h", str(primary["host"]), "-p", str(primary.get("port", 5432)),
          "-U", str(primary.get("user", "postgres"))], timeout=120)
    standby = Standby(pgdata, socket_dir, port, primary_owner_url)
    try:
        standby.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return standby

