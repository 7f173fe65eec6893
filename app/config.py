"""Settings: the environment turned into one typed object. Nothing else reads os.environ.

Each setting is declared once, in `Settings` (pydantic-settings): its environment variable,
its default and how its text is read. An unset or empty variable means the default (except
COLLECTOR_ENV, HOST and LOG_LEVEL, where an empty value is taken as written); a bad value
stops the start with a ConfigError that names the variable (`load`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

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


def _name(info: ValidationInfo) -> str:
    """The environment variable a field is read from (its name in messages)."""
    return ENV_NAMES.get(info.field_name or "", info.field_name or "settings")


def _default(info: ValidationInfo) -> Any:
    return Settings.model_fields[info.field_name or ""].get_default(call_default_factory=True)


def _minimum(field: str) -> object:
    """The field's minimum as declared (1, not the 1.0 pydantic compares a float with)."""
    return next(m.ge for m in Settings.model_fields[field].metadata if hasattr(m, "ge"))


def _int(raw: Any, info: ValidationInfo) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{_name(info)} must be an integer, got {raw!r}") from None


def _float(raw: Any, info: ValidationInfo) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{_name(info)} must be a number, got {raw!r}") from None
    if value != value:  # NaN passes no minimum
        raise ConfigError(f"{_name(info)} must be >= {_minimum(info.field_name or '')}")
    return value


def _bool(raw: Any, info: ValidationInfo) -> Any:
    if not isinstance(raw, str):
        return raw
    word = raw.strip().lower()
    if word == "":
        return _default(info)
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{_name(info)} must be true or false, got {word!r}")


def _words(raw: Any) -> Any:
    """A comma-separated list; blanks around and between entries are dropped."""
    if not isinstance(raw, str):
        return raw
    return tuple(v.strip() for v in raw.split(",") if v.strip())


def _api_keys(raw: Any) -> Any:
    return parse_api_keys(raw) if isinstance(raw, str) else raw


def _prepare_threshold(raw: Any, info: ValidationInfo) -> Any:
    """DB_PREPARE_THRESHOLD: psycopg's prepare_threshold; `off` never prepares."""
    if isinstance(raw, str) and raw.strip().lower() in ("off", "none", "false"):
        return None
    return _int(raw, info)


def _metrics_token(token: str | None) -> str | None:
    # Required to serve in production (app/handlers/metrics.py); the worker has none.
    if token is not None and len(token) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters")
    return token


def _environment(raw: Any) -> Any:
    if raw not in ("development", "production", "test"):
        raise ConfigError("COLLECTOR_ENV must be development, production or test")
    return raw


def _absolute(path: Path | None) -> Path | None:
    return path.absolute() if path is not None else None


Int = Annotated[int, BeforeValidator(_int)]
Float = Annotated[float, BeforeValidator(_float)]
Bool = Annotated[bool, BeforeValidator(_bool)]
Words = Annotated[tuple[str, ...], BeforeValidator(_words)]


def env(name: str, default: Any = None, *, minimum: float | None = None, secret: bool = False,
        **extra: Any) -> Any:
    """A setting read from the environment variable `name`."""
    return Field(default, validation_alias=name, ge=minimum, repr=not secret, **extra)


# load(env): the mapping read instead of the process environment
_GIVEN: ContextVar[Mapping[str, str] | None] = ContextVar("qcc_settings_env", default=None)

# Variables where an empty value is a value (every other empty variable means unset).
EMPTY_IS_A_VALUE = frozenset({"COLLECTOR_ENV", "HOST", "LOG_LEVEL"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, extra="ignore", enable_decoding=False,
        validate_by_name=True, validate_by_alias=True, validate_default=False)

    environment: Annotated[Literal["development", "production", "test"],
                           BeforeValidator(_environment)] = env("COLLECTOR_ENV", "development")
    database_url: str | None = env("DATABASE_URL")
    # unset: DATABASE_URL (filled in by _unset_empty)
    database_migrate_url: str | None = env("DATABASE_MIGRATE_URL")
    data_dir: Annotated[Path, AfterValidator(_absolute)] = env(
        "COLLECTOR_DATA_DIR", Path("var"), validate_default=True)
    host: str = env("HOST", "127.0.0.1")
    port: Int = env("PORT", 9090, minimum=1)
    workers: Int = env("WEB_CONCURRENCY", 2, minimum=1)
    api_keys: Annotated[tuple[BootstrapKey, ...], BeforeValidator(_api_keys)] = env(
        "API_KEYS", (), secret=True)
    rate_limit_per_tenant: Int = env("RATE_LIMIT_PER_TENANT", 200, minimum=0)
    rate_limit_burst: Int = env("RATE_LIMIT_BURST", 400, minimum=0)
    max_body_bytes: Int = env("MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
    max_batch_body_bytes: Int = env("MAX_BATCH_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
    # request limits beyond bodies (app/server.py: the head; app/guard.py: the rest)
    # above what the contract allows (GET /reports: ~54 KB of percent-encoded, bounded
    # filters in up to 131 parameters): a valid request is never refused
    max_header_bytes: Int = env("MAX_HEADER_BYTES", 96 * 1024, minimum=4096)
    max_headers: Int = env("MAX_HEADERS", 100, minimum=10)
    max_url_bytes: Int = env("MAX_URL_BYTES", 64 * 1024, minimum=1024)
    max_query_params: Int = env("MAX_QUERY_PARAMS", 200, minimum=10)
    header_timeout: Float = env("HEADER_TIMEOUT", 10.0, minimum=0.5)
    body_timeout: Float = env("BODY_TIMEOUT", 60.0, minimum=0.5)
    forwarded_allow_ips: Annotated[str, AfterValidator(str.strip)] = env("FORWARDED_ALLOW_IPS", "")
    cors_allow_origins: Words = env("CORS_ALLOW_ORIGINS", ())
    idempotency_ttl_hours: Int = env("IDEMPOTENCY_TTL_HOURS", 24, minimum=24)
    idempotency_in_flight_seconds: Int = env("IDEMPOTENCY_IN_FLIGHT_SECONDS", 60, minimum=1)
    batch_concurrency: Int = env("BATCH_CONCURRENCY", 2, minimum=1)
    db_pool_min: Int = env("DB_POOL_MIN", 2, minimum=1)
    # the chart's default too: on 2 cores, 10 per worker measured list p99 45-48 ms, 4 30-31
    db_pool_max: Int = env("DB_POOL_MAX", 4, minimum=1)
    db_pool_timeout: Float = env("DB_POOL_TIMEOUT", 10.0, minimum=0.1)
    # None: no server-side prepared statements (behind PgBouncer < 1.21 in transaction mode)
    db_prepare_threshold: Annotated[int | None, BeforeValidator(_prepare_threshold)] = env(
        "DB_PREPARE_THRESHOLD", 5, minimum=0)
    worker_database_url: str | None = env("WORKER_DATABASE_URL")
    # read replica: DATABASE_READ_URL unset = every read on the primary
    database_read_url: str | None = env("DATABASE_READ_URL")
    read_max_lag_seconds: Float = env("READ_MAX_LAG_SECONDS", 5.0, minimum=0.1)
    read_wait_seconds: Float = env("READ_WAIT_SECONDS", 0.1, minimum=0.0)
    log_level: Annotated[str, AfterValidator(str.upper)] = env("LOG_LEVEL", "INFO")
    metrics_token: Annotated[str | None, AfterValidator(_metrics_token)] = env(
        "METRICS_TOKEN", secret=True)
    auth_failures_per_minute: Int = env("AUTH_FAILURES_PER_MINUTE", 30, minimum=0)
    key_rotation_grace: Int = env("KEY_ROTATION_GRACE", 86_400, minimum=0)
    prometheus_multiproc_dir: str | None = env("PROMETHEUS_MULTIPROC_DIR")
    git_sha: str | None = env("GIT_SHA")  # qcc_build_info; images set GIT_SHA at build time
    otel_exporter_otlp_endpoint: str | None = env("OTEL_EXPORTER_OTLP_ENDPOINT")  # tracing off unless set
    otel_service_name: str = env("OTEL_SERVICE_NAME", "qc-collector")
    validate_responses: Bool = env("VALIDATE_RESPONSES", False)
    # room in each API worker for repeated reads' full answers (app/conditional.py); 0 keeps none
    answer_memory_bytes: Int = env("ANSWER_MEMORY_BYTES", 8 * 1024 * 1024, minimum=0)
    # false: every operation through connexion's whole chain, none by app/direct.py
    direct_operations: Bool = env("DIRECT_OPERATIONS", True)
    # false: workers accept connections as they race for them (app/server.py)
    balance_connections: Bool = env("BALANCE_CONNECTIONS", True)
    signing_key: str | None = env("SIGNING_KEY", secret=True)
    signing_keys_retired: str | None = env("SIGNING_KEYS_RETIRED")
    export_dir: Annotated[Path | None, AfterValidator(_absolute)] = env("EXPORT_DIR")
    export_max_days: Int = env("EXPORT_MAX_DAYS", 31, minimum=1)
    export_max_rows: Int = env("EXPORT_MAX_ROWS", 1_000_000, minimum=1)
    export_sign_secret: str | None = env("EXPORT_SIGN_SECRET", secret=True)
    export_sign_secrets_old: Words = env("EXPORT_SIGN_SECRETS_OLD", (), secret=True)
    export_url_ttl: Int = env("EXPORT_URL_TTL", 900, minimum=1)
    export_ttl: Int = env("EXPORT_TTL", 86_400, minimum=1)
    retention_plan_ttl: Int = env("RETENTION_PLAN_TTL", 3600, minimum=1)
    retention_days: Int = env("RETENTION_DAYS", 90, minimum=0)
    retention_batch: Int = env("RETENTION_BATCH", 1000, minimum=1)
    retention_pause: Float = env("RETENTION_PAUSE", 2.0, minimum=0.0)
    worker_concurrency: Int = env("WORKER_CONCURRENCY", 2, minimum=1)
    # whole seconds in the environment
    worker_heartbeat: Annotated[float, BeforeValidator(_int)] = env(
        "WORKER_HEARTBEAT_SECONDS", 10.0, minimum=1)
    collector_url: str | None = env("COLLECTOR_URL")
    smoke_api_key: str | None = env("API_KEY", secret=True)
    smoke_tenant: str | None = env("TENANT_ID")
    # alerts
    encryption_key: str | None = env("ENCRYPTION_KEY", secret=True)
    encryption_keys_old: Words = env("ENCRYPTION_KEYS_OLD", (), secret=True)
    alert_dedup_window: Int = env("ALERT_DEDUP_WINDOW", 300, minimum=1)
    alerts_allow_private_targets: Bool = env("ALERTS_ALLOW_PRIVATE_TARGETS", False)
    alert_dispatch: Bool = env("ALERT_DISPATCH", True)
    alert_poll_seconds: Float = env("ALERT_POLL_SECONDS", 1.0, minimum=0.05)
    alert_max_attempts: Int = env("ALERT_MAX_ATTEMPTS", 5, minimum=1)
    alert_retry_base_seconds: Float = env("ALERT_RETRY_BASE_SECONDS", 2.0, minimum=0.01)
    alert_retry_max_seconds: Float = env("ALERT_RETRY_MAX_SECONDS", 300.0, minimum=0.01)
    alert_send_timeout: Float = env("ALERT_SEND_TIMEOUT", 10.0, minimum=0.1)
    pagerduty_events_url: str = env("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue")
    smtp_host: str | None = env("SMTP_HOST")
    smtp_port: Int = env("SMTP_PORT", 587, minimum=1)
    smtp_from: str = env("SMTP_FROM", "qc-collector@localhost")
    smtp_username: str | None = env("SMTP_USERNAME")
    smtp_password: str | None = env("SMTP_PASSWORD", secret=True)
    smtp_starttls: Bool = env("SMTP_STARTTLS", True)
    slack_webhook_url: str | None = env("SLACK_WEBHOOK_URL", secret=True)
    pagerduty_integration_key: str | None = env("PAGERDUTY_INTEGRATION_KEY", secret=True)
    email_recipients: Words = env("EMAIL_RECIPIENTS", ())
    system_alert_interval: Float = env("SYSTEM_ALERT_INTERVAL", 60.0, minimum=1.0)
    alert_db_size_bytes: Int = env("ALERT_DB_SIZE_BYTES", 0, minimum=0)
    # ops metrics
    ops_flush_seconds: Float = env("OPS_FLUSH_SECONDS", 2.0, minimum=0.1)
    # console (BFF) sessions
    console_session_ttl: Int = env("CONSOLE_SESSION_TTL", 8 * 3600, minimum=60)
    console_session_idle: Int = env("CONSOLE_SESSION_IDLE", 1800, minimum=60)
    console_insecure_cookies: Bool = env("CONSOLE_INSECURE_COOKIES", False)
    console_login_per_minute: Int = env("CONSOLE_LOGIN_PER_MINUTE", 10, minimum=0)

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The process environment (no .env file, no secrets dir) or load()'s mapping, by
        # the variables' exact names only (pydantic-settings' own env source would also
        # take a field's name, e.g. `port`).
        given = _GIVEN.get()
        environ = os.environ if given is None else given
        variables = set(ENV_NAMES.values())
        return init_settings, InitSettingsSource(
            settings_cls, init_kwargs={k: v for k, v in environ.items() if k in variables})

    @model_validator(mode="before")
    @classmethod
    def _unset_empty(cls, data: Any) -> Any:
        """An empty variable is an unset one; DATABASE_MIGRATE_URL defaults to DATABASE_URL."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v != "" or k in EMPTY_IS_A_VALUE}
        if "DATABASE_MIGRATE_URL" not in data and "DATABASE_URL" in data:
            data["DATABASE_MIGRATE_URL"] = data["DATABASE_URL"]
        return data

    @property
    def embedded(self) -> bool:
        return not self.database_url

    @property
    def exports_path(self) -> Path:
        return self.export_dir or (self.data_dir / "exports")


# field name -> environment variable
ENV_NAMES: dict[str, str] = {name: str(f.validation_alias) for name, f in Settings.model_fields.items()}


def load(env: dict[str, str] | None = None) -> Settings:
    """The settings from `env` (default: the process environment); a bad value raises
    ConfigError naming its variable."""
    token = _GIVEN.set(env)
    try:
        return Settings()
    except ValidationError as exc:
        raise _config_error(exc) from None
    finally:
        _GIVEN.reset(token)


def _config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        return cause
    name = str(error["loc"][0]) if error["loc"] else "settings"
    field = next((f for f, variable in ENV_NAMES.items() if name in (f, variable)), None)
    if error["type"] == "greater_than_equal" and field is not None:
        return ConfigError(f"{ENV_NAMES[field]} must be >= {_minimum(field)}")
    return ConfigError(f"{name}: {error['msg']}")
