"""Point-in-time recovery drill on a throw-away PostgreSQL 16 cluster made from the embedded
PostgreSQL's own binaries: continuous WAL archiving to a posix repository, a full base
backup, more writes, a restore to a moment between them, and every table's row count and
content hash equal to the state at that moment.

The drill uses PostgreSQL's own mechanism (archive_command, pg_basebackup,
restore_command + recovery_target_time), which pgBackRest drives in production
(docs/RUNBOOK.md, section 4): Debian bookworm's pgbackrest 2.45 refuses PostgreSQL 16
("unexpected control version = 1300 and catalog version = 202307071"), so it cannot
drive this cluster here."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.storage.migrate import migrate

STANZA = "drill"


def pg_bin() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    port: int
    user: str | None  # the OS user PostgreSQL runs as (initdb refuses root)

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def wal_repo(self) -> Path:
        return self.root / "repo" / "wal"

    def run(self, *args: str | Path, timeout: int = 120) -> str:
        done = subprocess.run([str(a) for a in args], user=self.user, capture_output=True, text=True,
                              timeout=timeout, cwd=self.root, env={**os.environ, "PGTZ": "UTC"})
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def pg_ctl(self, pgdata: Path, *args: str) -> None:
        self.run(pg_bin() / "pg_ctl", "-D", pgdata, "-l", self.root / f"{pgdata.name}.log", "-w", *args)

    def url(self, dbname: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir), port=self.port,
                                              user="postgres", dbname=dbname)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    user = None
    if os.geteuid() == 0:
        user = "pgserver"  # the user pgserver itself runs PostgreSQL as under root
        if not _user_exists(user):
            subprocess.run(["useradd", "-s", "/bin/bash", user], check=True)
    # Outside pytest's private tmp dir, which the PostgreSQL user could not traverse.
    root = Path(tempfile.mkdtemp(prefix="qcc-pitr-"))
    root.chmod(0o755)
    if user:
        shutil.chown(root, user)
    c = Cluster(root=root, port=free_port(), user=user)
    c.run("mkdir", "-m", "0755", root / "sock")
    c.run("mkdir", "-p", "-m", "0700", c.wal_repo, root / "repo" / "base")
    try:
        yield c
    finally:
        for pgdata in (root / "pgdata", root / "restored"):
            if (pgdata / "postmaster.pid").exists():
                with contextlib.suppress(AssertionError):
                    c.pg_ctl(pgdata, "stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def table_hashes(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every row's text, in a fixed order, for each table."""
    hashes = {}
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
        for table in tables:
            query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                            " FROM {} AS t").format(sql.SQL(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            hashes[table] = (int(row[0]), str(row[1]))
    return hashes


def write_keys(url: str, tenant: str, count: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO api_keys (tenant_id, id, name, role, prefix, secret_sha256, origin)"
            " SELECT %s, gen_random_uuid(), 'k' || g, 'viewer', 'qcc_', sha256((%s || g)::bytea), 'cli'"
            " FROM generate_series(1, %s) AS g", (tenant, tenant, count))


def test_restore_to_a_point_in_time_between_backup_and_later_writes(cluster: Cluster):
    pgdata = cluster.root / "pgdata"
    cluster.run(pg_bin() / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "--no-sync")
    # Every finished WAL segment is copied to the repository, never overwritten.
    archive = f"test ! -f {cluster.wal_repo}/%f && cp %p {cluster.wal_repo}/%f"
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(f"port = {cluster.port}\nlisten_addresses = ''\n"
                   f"unix_socket_directories = '{cluster.socket_dir}'\n"
                   "wal_level = replica\narchive_mode = on\n"
                   f"archive_command = '{archive}'\nfsync = off\n")
    cluster.pg_ctl(pgdata, "start")

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE qc_collector")
    url = cluster.url("qc_collector")
    migrate(url)
    write_keys(url, "before-backup", 200)

    base = cluster.root / "repo" / "base" / "full"
    cluster.run(pg_bin() / "pg_basebackup", "-h", cluster.socket_dir, "-p", str(cluster.port),
                "-U", "postgres", "-D", base, "--format=tar", "--gzip", "--wal-method=fetch",
                "--checkpoint=fast", "--no-sync")

    write_keys(url, "after-backup", 300)  # only in the WAL, not in the backup
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        target = row[0]
    at_target = table_hashes(url)
    time.sleep(1.1)
    write_keys(url, "too-late", 100)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM api_keys WHERE tenant_id = 'before-backup' AND name LIKE 'k1%'")
        # close the segment holding the later writes so it is archived
        conn.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while conn.execute("SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1)"
                           " FROM pg_stat_archiver").fetchone() != (True,):
            assert time.monotonic() < deadline, "WAL was not archived"
            time.sleep(0.2)
    at_end = table_hashes(url)
    cluster.pg_ctl(pgdata, "stop", "-m", "immediate")  # the primary is lost

    restored = cluster.root / "restored"
    cluster.run("mkdir", "-m", "0700", restored)
    cluster.run("tar", "-xzf", base / "base.tar.gz", "-C", restored)
    with open(restored / "postgresql.conf", "a") as conf:
        conf.write(f"restore_command = 'cp {cluster.wal_repo}/%f %p'\n"
                   f"recovery_target_time = '{target.isoformat(sep=' ')}'\n"
                   "recovery_target_action = 'promote'\narchive_mode = off\n")
    cluster.run("touch", restored / "recovery.signal")
    cluster.pg_ctl(restored, "start")
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row == (False,) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row == (False,), "the restored cluster did not finish recovery"

    got = table_hashes(url)
    assert got == at_target
    assert got != at_end and got["public.api_keys"][0] == 500
