"""Access: API keys, console sessions, per-address throttles and the tenant bucket, the
caller (Principal), and the development secrets kept under the data dir."""
