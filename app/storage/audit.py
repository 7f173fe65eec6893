"""Audit log reads (entries are written by database triggers, never from Python)."""

from __future__ import annotations

from typing import Any

from app.storage.db import Read
from app.storage.queries import q


def list_page(*, tenant: str, params: dict[str, Any]) -> Read[list[dict[str, Any]]]:
    return Read(q("list_audit"), {"tenant": tenant, **params}, list, dict_rows=True)
