"""Loads queries.sql into named statements (procrastinate's `-- name:` convention)."""

from __future__ import annotations

import re
from importlib import resources

from psycopg import sql

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load() -> dict[str, str]:
    text = (resources.files("app.storage") / "queries.sql").read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


QUERIES = _load()


def q(name: str) -> str:
    return QUERIES[name]


def composed(name: str, **parts: sql.Composable) -> sql.Composed:
    """A query with identifier/keyword slots filled through psycopg.sql only."""
    return sql.SQL(QUERIES[name]).format(**parts)
