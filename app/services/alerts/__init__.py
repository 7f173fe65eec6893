"""Alerts: a tenant's rules, matched in the ingest transaction, delivered as jobs.

- `rules`: alert rules (create, list, delete) and the notification delivery log;
- `delivery`: outbox windows -> notifications -> one delivery job per channel;
- `channels`: Slack, PagerDuty, email, signed webhook: the message, the send, the verdict;
- `channel_secrets`: channel secrets sealed at rest (AES-256-GCM) and their masked views;
- `ssrf_guard`: where an outbound alert request may go (public https targets only).
"""
