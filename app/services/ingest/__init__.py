"""Ingest: submissions in, stored reports out.

- `submissions`: the rules beyond the schema and the prepared record of each report;
- `group_commit`: the generic engine that writes the work of concurrent requests in
  shared transactions;
- `idempotency`: the Idempotency-Key protocol (claim, replay, release, prune);
- `service`: the use case tying them together, and the write of one transaction;
- `imports`: result files (app/importers) through the same batch ingest.
"""
