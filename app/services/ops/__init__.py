"""Operations: /ops/metrics (per-tenant request numbers in PostgreSQL), what /metrics reads
from PostgreSQL, and the system alerts about the service itself."""
