"""Who is calling: the key's tenant, role and id."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    role: str
    key_id: UUID
