"""Migrations: forward-only, safe when several replicas start at once."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from app.storage.migrate import _migrations, migrate


@pytest.fixture
def fresh_database(database, owner):
    name = f"mig_{uuid.uuid4().hex[:10]}"
    owner.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(database.owner_url)
    params["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**params)
    owner.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_three_replicas_migrating_at_once_apply_each_file_once(fresh_database):
    code = "import sys; from app.storage.migrate import migrate; print(len(migrate(sys.argv[1])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_database],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    applied = sorted(int(out.strip()) for out, _ in results)
    assert applied == [0, 0, len(_migrations())]  # one replica did the work
    with psycopg.connect(fresh_database) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == [name for name, _ in _migrations()]


def test_an_applied_migration_may_not_change(fresh_database):
    migrate(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET sha256 = 'edited'")
    with pytest.raises(RuntimeError, match="forward-only"):
        migrate(fresh_database)
