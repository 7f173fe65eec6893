"""docker-compose.yml beyond the ops gate's shape check: no secret written in the file,
and api and worker share what alert delivery needs (one ENCRYPTION_KEY)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tools.check_ops import ROOT

SECRETS = ("POSTGRES_PASSWORD", "DATABASE_URL", "DATABASE_MIGRATE_URL", "API_KEYS", "SIGNING_KEY",
           "EXPORT_SIGN_SECRET", "ENCRYPTION_KEY", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL",
           "PAGERDUTY_INTEGRATION_KEY", "METRICS_TOKEN")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    return {k: str(v) for k, v in env.items()}


def test_no_secret_is_written_in_the_compose_file():
    for name, service in compose()["services"].items():
        for key, value in environment(service).items():
            if key in SECRETS:
                # only interpolations from the environment (or an untracked .env file):
                # ${VAR:?...} required, ${VAR:-} optional; a URL may embed one
                literal = re.sub(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", "", value)
                assert not re.search(r"://[^/\s:@]+:[^@\s]+@", literal), (name, key)
                if "://" not in value:
                    assert literal == "", (name, key, value)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    found = {}
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        found[rest.split(":")[0]] = source
    return found


def test_api_and_worker_share_the_encryption_key():
    """COLLECTOR_ENV=development generates ENCRYPTION_KEY in the data dir unless it is set:
    api (seals channel secrets) and worker (opens them) must see one key, so they mount
    one volume at one COLLECTOR_DATA_DIR and get the same ENCRYPTION_KEY setting."""
    services = compose()["services"]
    api, worker = environment(services["api"]), environment(services["worker"])
    assert api["COLLECTOR_DATA_DIR"] == worker["COLLECTOR_DATA_DIR"]
    data_dir = api["COLLECTOR_DATA_DIR"]
    assert mounts(services["api"])[data_dir] == mounts(services["worker"])[data_dir]
    assert api["ENCRYPTION_KEY"] == worker["ENCRYPTION_KEY"] == "${ENCRYPTION_KEY:-}"
    # the delivery secrets of system alerts: the worker sends, the API does not need them
    for name in ("SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "PAGERDUTY_INTEGRATION_KEY"):
        assert worker[name] == f"${{{name}:-}}" and name not in api
