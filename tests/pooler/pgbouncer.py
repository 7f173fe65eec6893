"""A real PgBouncer (Debian's /usr/sbin/pgbouncer) in transaction mode in front of the
embedded PostgreSQL's socket, on a loopback TCP port."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def version() -> tuple[int, int]:
    out = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


@dataclass
class Bouncer:
    process: subprocess.Popen[bytes]
    root: Path
    port: int

    def url(self, upstream_url: str) -> str:
        """`upstream_url` (user, database) through the pooler."""
        params = psycopg.conninfo.conninfo_to_dict(upstream_url)
        params.update(host="127.0.0.1", port=str(self.port))
        return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start(upstream_url: str, *, port: int, pool_size: int = 2,
          max_prepared_statements: int = 0) -> Bouncer:
    """Transaction pooling with `pool_size` server connections per (user, database).

    What the service needs from it (docs/SCALING.md): the `options` startup parameter
    (psycopg sends `-c TimeZone=UTC`) is not forwarded by PgBouncer, so it is ignored and
    the database line sets `timezone=UTC` on every server connection instead."""
    upstream = psycopg.conninfo.conninfo_to_dict(upstream_url)
    root = Path(tempfile.mkdtemp(prefix="qcc-pgbouncer-"))
    users = {str(upstream.get("user", "postgres")), "postgres", "qcc_app"}
    (root / "userlist.txt").write_text("".join(f'"{u}" ""\n' for u in sorted(users)))
    settings = [
        "[databases]",
        f"* = host={upstream['host']} port={upstream.get('port', 5432)} timezone=UTC",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {root / 'userlist.txt'}",
        "pool_mode = transaction",
        f"default_pool_size = {pool_size}",
        "max_client_conn = 500",
        "ignore_startup_parameters = options,extra_float_digits",
        f"logfile = {root / 'pgbouncer.log'}",
        "admin_users = postgres",
    ]
    if max_prepared_statements and version() >= (1, 21):
        settings.append(f"max_prepared_statements = {max_prepared_statements}")
    (root / "pgbouncer.ini").write_text("\n".join(settings) + "\n")
    user = "pgserver" if os.geteuid() == 0 else None  # PgBouncer refuses to run as root
    if user is not None:
        for path in (root, *root.iterdir()):
            shutil.chown(path, user)
    process = subprocess.Popen([PGBOUNCER, str(root / "pgbouncer.ini")], user=user,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    bouncer = Bouncer(process, root, port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = bouncer.log()
            bouncer.stop()
            raise RuntimeError(f"pgbouncer exited: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return bouncer
        except OSError:
            time.sleep(0.05)
    bouncer.stop()
    raise RuntimeError("pgbouncer did not listen")
