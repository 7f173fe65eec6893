"""Settings: the environment turned into one typed object. Nothing else reads os.environ."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("viewer", "operator", "auditor", "admin")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A key is guessed online only (throttled per address), but 8 characters was too few.
MIN_SECRET_LENGTH = 16


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class BootstrapKey:
    tenant: str
    role: str
    secret: str


def parse_api_keys(raw: str) -> tuple[BootstrapKey, ...]:
    """`tenant:role:secret,...`; a two-part `tenant:secret` entry means role operator."""
    keys = []
    for position, entry in enumerate(e.strip() for e in raw.split(",")):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) == 2:
            tenant, role, secret = parts[0], "operator", parts[1]
        elif len(parts) == 3 and parts[1] in ROLES:
            tenant, role, secret = parts
        elif len(parts) == 3:
            # tenant:secret where the secret itself contains a colon
            tenant, role, secret = parts[0], "operator", f"{parts[1]}:{parts[2]}"
        else:
            raise ConfigError(f"API_KEYS entry {position + 1} is not tenant:role:secret")
        if not TENANT_PATTERN.match(tenant):
            raise ConfigError(f"API_KEYS entry {position + 1}: tenant must match {TENANT_PATTERN.pattern}")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"API_KEYS entry {position + 1}: secret must be at least "
                              f"{MIN_SECRET_LENGTH} characters")
        keys.append(BootstrapKey(tenant, role, secret))
    return tuple(keys)


def _int(env: dict[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}")
    return value


def _float(env: dict[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name} must be >= {minimum}")
    return value


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _list(env: dict[str, str], name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())


def _metrics_token(env: dict[str, str]) -> str | None:
    # Required to serve in production (app/handlers/metrics.py); the worker has none.
    token = env.get("METRICS_TOKEN") or None
    if token is not None and len(token) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters")
    return token


def _prepare_threshold(env: dict[str, str]) -> int | None:
    """DB_PREPARE_THRESHOLD: psycopg's prepare_threshold; `off` never prepares."""
    if env.get("DB_PREPARE_THRESHOLD", "").strip().lower() in ("off", "none", "false"):
        return None
    return _int(env, "DB_PREPARE_THRESHOLD", 5)


@dataclass(frozen=True, slots=True)
class Settings:
    environment: str = "development"
    database_url: str | None = None
    database_migrate_url: str | None = None
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 9090
    workers: int = 2
    api_keys: tuple[BootstrapKey, ...] = ()
    rate_limit_per_tenant: int = 200
    rate_limit_burst: int = 400
    max_body_bytes: int = 1024 * 1024
    max_batch_body_bytes: int = 10 * 1024 * 1024
    # request limits beyond bodies (app/server.py: the head; app/guard.py: the rest)
    # above what the contract allows (GET /reports: ~54 KB of percent-encoded, bounded
    # filters in up to 131 parameters): a valid request is never refused
    max_header_bytes: int = 96 * 1024
    max_headers: int = 100
    max_url_bytes: int = 64 * 1024
    max_query_params: int = 200
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    forwarded_allow_ips: str = ""
    cors_allow_origins: tuple[str, ...] = ()
    idempotency_ttl_hours: int = 24
    idempotency_in_flight_seconds: int = 60
    batch_concurrency: int = 2
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_pool_timeout: float = 10.0
    # None: no server-side prepared statements (behind PgBouncer < 1.21 in transaction mode)
    db_prepare_threshold: int | None = 5
    worker_database_url: str | None = None
    # read replica: DATABASE_READ_URL unset = every read on the primary
    database_read_url: str | None = None
    read_max_lag_seconds: float = 5.0
    read_wait_seconds: float = 0.1
    log_level: str = "INFO"
    metrics_token: str | None = field(default=None, repr=False)
    auth_failures_per_minute: int = 30
    key_rotation_grace: int = 86_400
    prometheus_multiproc_dir: str | None = None
    git_sha: str | None = None  # qcc_build_info; images set GIT_SHA at build time
    otel_exporter_otlp_endpoint: str | None = None  # tracing is off unless set
    otel_service_name: str = "qc-collector"
    validate_responses: bool = False
    signing_key: str | None = field(default=None, repr=False)
    signing_keys_retired: str | None = None
    export_dir: Path | None = None
    export_max_days: int = 31
    export_max_rows: int = 1_000_000
    export_sign_secret: str | None = field(default=None, repr=False)
    export_sign_secrets_old: tuple[str, ...] = field(default=(), repr=False)
    export_url_ttl: int = 900
    export_ttl: int = 86_400
    retention_plan_ttl: int = 3600
    retention_days: int = 90
    retention_batch: int = 5000
    worker_concurrency: int = 2
    worker_heartbeat: float = 10.0
    collector_url: str | None = None
    smoke_api_key: str | None = field(default=None, repr=False)
    smoke_tenant: str | None = None
    # alerts
    encryption_key: str | None = field(default=None, repr=False)
    encryption_keys_old: tuple[str, ...] = field(default=(), repr=False)
    alert_dedup_window: int = 300
    alerts_allow_private_targets: bool = False
    alert_dispatch: bool = True
    alert_poll_seconds: float = 1.0
    alert_max_attempts: int = 5
    alert_retry_base_seconds: float = 2.0
    alert_retry_max_seconds: float = 300.0
    alert_send_timeout: float = 10.0
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str = "qc-collector@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = True
    slack_webhook_url: str | None = field(default=None, repr=False)
    pagerduty_integration_key: str | None = field(default=None, repr=False)
    email_recipients: tuple[str, ...] = ()
    system_alert_interval: float = 60.0
    alert_db_size_bytes: int = 0
    # ops metrics
    ops_flush_seconds: float = 2.0
    # console (BFF) sessions
    console_session_ttl: int = 8 * 3600
    console_session_idle: int = 1800
    console_insecure_cookies: bool = False
    console_login_per_minute: int = 10

    @property
    def embedded(self) -> bool:
        return not self.database_url

    @property
    def exports_path(self) -> Path:
        return self.export_dir or (self.data_dir / "exports")


def load(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    environment = env.get("COLLECTOR_ENV", "development")
    if environment not in ("development", "production", "test"):
        raise ConfigError("COLLECTOR_ENV must be development, production or test")
    database_url = env.get("DATABASE_URL") or None
    return Settings(
        environment=environment,
        database_url=database_url,
        database_migrate_url=env.get("DATABASE_MIGRATE_URL") or database_url,
        data_dir=Path(env.get("COLLECTOR_DATA_DIR") or "var").absolute(),
        host=env.get("HOST", "127.0.0.1"),
        port=_int(env, "PORT", 9090, minimum=1),
        workers=_int(env, "WEB_CONCURRENCY", 2, minimum=1),
        api_keys=parse_api_keys(env.get("API_KEYS", "")),
        rate_limit_per_tenant=_int(env, "RATE_LIMIT_PER_TENANT", 200),
        rate_limit_burst=_int(env, "RATE_LIMIT_BURST", 400),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        max_batch_body_bytes=_int(env, "MAX_BATCH_BODY_BYTES", 10 * 1024 * 1024, minimum=1024),
        max_header_bytes=_int(env, "MAX_HEADER_BYTES", 96 * 1024, minimum=4096),
        max_headers=_int(env, "MAX_HEADERS", 100, minimum=10),
        max_url_bytes=_int(env, "MAX_URL_BYTES", 64 * 1024, minimum=1024),
        max_query_params=_int(env, "MAX_QUERY_PARAMS", 200, minimum=10),
        header_timeout=_float(env, "HEADER_TIMEOUT", 10.0, minimum=0.5),
        body_timeout=_float(env, "BODY_TIMEOUT", 60.0, minimum=0.5),
        forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "").strip(),
        cors_allow_origins=_list(env, "CORS_ALLOW_ORIGINS"),
        idempotency_ttl_hours=_int(env, "IDEMPOTENCY_TTL_HOURS", 24, minimum=24),
        idempotency_in_flight_seconds=_int(env, "IDEMPOTENCY_IN_FLIGHT_SECONDS", 60, minimum=1),
        batch_concurrency=_int(env, "BATCH_CONCURRENCY", 2, minimum=1),
        db_pool_min=_int(env, "DB_POOL_MIN", 2, minimum=1),
        db_pool_max=_int(env, "DB_POOL_MAX", 10, minimum=1),
        db_pool_timeout=_float(env, "DB_POOL_TIMEOUT", 10.0, minimum=0.1),
        db_prepare_threshold=_prepare_threshold(env),
        worker_database_url=env.get("WORKER_DATABASE_URL") or None,
        database_read_url=env.get("DATABASE_READ_URL") or None,
        read_max_lag_seconds=_float(env, "READ_MAX_LAG_SECONDS", 5.0, minimum=0.1),
        read_wait_seconds=_float(env, "READ_WAIT_SECONDS", 0.1),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        metrics_token=_metrics_token(env),
        auth_failures_per_minute=_int(env, "AUTH_FAILURES_PER_MINUTE", 30),
        key_rotation_grace=_int(env, "KEY_ROTATION_GRACE", 86_400),
        prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        git_sha=env.get("GIT_SHA") or None,
        otel_exporter_otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
        otel_service_name=env.get("OTEL_SERVICE_NAME") or "qc-collector",
        validate_responses=_bool(env, "VALIDATE_RESPONSES", False),
        signing_key=env.get("SIGNING_KEY") or None,
        signing_keys_retired=env.get("SIGNING_KEYS_RETIRED") or None,
        export_dir=Path(env["EXPORT_DIR"]).absolute() if env.get("EXPORT_DIR") else None,
        export_max_days=_int(env, "EXPORT_MAX_DAYS", 31, minimum=1),
        export_max_rows=_int(env, "EXPORT_MAX_ROWS", 1_000_000, minimum=1),
        export_sign_secret=env.get("EXPORT_SIGN_SECRET") or None,
        export_sign_secrets_old=_list(env, "EXPORT_SIGN_SECRETS_OLD"),
        export_url_ttl=_int(env, "EXPORT_URL_TTL", 900, minimum=1),
        export_ttl=_int(env, "EXPORT_TTL", 86_400, minimum=1),
        retention_plan_ttl=_int(env, "RETENTION_PLAN_TTL", 3600, minimum=1),
        retention_days=_int(env, "RETENTION_DAYS", 90),
        retention_batch=_int(env, "RETENTION_BATCH", 5000, minimum=1),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 2, minimum=1),
        worker_heartbeat=float(_int(env, "WORKER_HEARTBEAT_SECONDS", 10, minimum=1)),
        collector_url=env.get("COLLECTOR_URL") or None,
        smoke_api_key=env.get("API_KEY") or None,
        smoke_tenant=env.get("TENANT_ID") or None,
        encryption_key=env.get("ENCRYPTION_KEY") or None,
        encryption_keys_old=_list(env, "ENCRYPTION_KEYS_OLD"),
        alert_dedup_window=_int(env, "ALERT_DEDUP_WINDOW", 300, minimum=1),
        alerts_allow_private_targets=_bool(env, "ALERTS_ALLOW_PRIVATE_TARGETS", False),
        alert_dispatch=_bool(env, "ALERT_DISPATCH", True),
        alert_poll_seconds=_float(env, "ALERT_POLL_SECONDS", 1.0, minimum=0.05),
        alert_max_attempts=_int(env, "ALERT_MAX_ATTEMPTS", 5, minimum=1),
        alert_retry_base_seconds=_float(env, "ALERT_RETRY_BASE_SECONDS", 2.0, minimum=0.01),
        alert_retry_max_seconds=_float(env, "ALERT_RETRY_MAX_SECONDS", 300.0, minimum=0.01),
        alert_send_timeout=_float(env, "ALERT_SEND_TIMEOUT", 10.0, minimum=0.1),
        pagerduty_events_url=env.get("PAGERDUTY_EVENTS_URL")
        or "https://events.pagerduty.com/v2/enqueue",
        smtp_host=env.get("SMTP_HOST") or None,
        smtp_port=_int(env, "SMTP_PORT", 587, minimum=1),
        smtp_from=env.get("SMTP_FROM") or "qc-collector@localhost",
        smtp_username=env.get("SMTP_USERNAME") or None,
        smtp_password=env.get("SMTP_PASSWORD") or None,
        smtp_starttls=_bool(env, "SMTP_STARTTLS", True),
        slack_webhook_url=env.get("SLACK_WEBHOOK_URL") or None,
        pagerduty_integration_key=env.get("PAGERDUTY_INTEGRATION_KEY") or None,
        email_recipients=tuple(a.strip() for a in env.get("EMAIL_RECIPIENTS", "").split(",")
                               if a.strip()),
        system_alert_interval=_float(env, "SYSTEM_ALERT_INTERVAL", 60.0, minimum=1.0),
        alert_db_size_bytes=_int(env, "ALERT_DB_SIZE_BYTES", 0),
        ops_flush_seconds=_float(env, "OPS_FLUSH_SECONDS", 2.0, minimum=0.1),
        console_session_ttl=_int(env, "CONSOLE_SESSION_TTL", 8 * 3600, minimum=60),
        console_session_idle=_int(env, "CONSOLE_SESSION_IDLE", 1800, minimum=60),
        console_insecure_cookies=_bool(env, "CONSOLE_INSECURE_COOKIES", False),
        console_login_per_minute=_int(env, "CONSOLE_LOGIN_PER_MINUTE", 10),
    )
