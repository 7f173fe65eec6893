"""app/config.py: the environment as users write it, read by the one Settings declaration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import config
from app.config import ENV_NAMES, ConfigError, Settings, parse_api_keys


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "http"}, "PORT must be an integer, got 'http'"),
    ({"PORT": "0"}, "PORT must be >= 1"),
    ({"IDEMPOTENCY_TTL_HOURS": "1"}, "IDEMPOTENCY_TTL_HOURS must be >= 24"),
    ({"BODY_TIMEOUT": "soon"}, "BODY_TIMEOUT must be a number, got 'soon'"),
    ({"BODY_TIMEOUT": "nan"}, "BODY_TIMEOUT must be >= 0.5"),
    ({"WORKER_HEARTBEAT_SECONDS": "0"}, "WORKER_HEARTBEAT_SECONDS must be >= 1"),
    ({"WORKER_HEARTBEAT_SECONDS": "2.5"}, "WORKER_HEARTBEAT_SECONDS must be an integer, got '2.5'"),
    ({"SMTP_STARTTLS": "Maybe"}, "SMTP_STARTTLS must be true or false, got 'maybe'"),
    ({"COLLECTOR_ENV": "prod"}, "COLLECTOR_ENV must be development, production or test"),
    ({"COLLECTOR_ENV": ""}, "COLLECTOR_ENV must be development, production or test"),
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16 characters"),
    ({"API_KEYS": "acme:admin:" + "s" * 16 + ",bad entry"}, "API_KEYS entry 2 is not tenant:role:secret"),
    ({"DB_PREPARE_THRESHOLD": "sometimes"}, "DB_PREPARE_THRESHOLD must be an integer, got 'sometimes'"),
])
def test_a_bad_value_stops_the_start_naming_its_variable(env, message):
    with pytest.raises(ConfigError) as caught:
        config.load(env)
    assert str(caught.value) == message


def test_unset_and_empty_variables_mean_the_defaults():
    assert config.load({}) == config.load({name: "" for name in config.ENV_NAMES.values()
                                           if name not in config.EMPTY_IS_A_VALUE})
    settings = config.load({})
    assert (settings.port, settings.rate_limit_burst, settings.smtp_starttls) == (9090, 400, True)
    assert settings.data_dir == Path("var").absolute() and settings.export_dir is None
    assert settings.database_migrate_url is None and settings.db_prepare_threshold == 5
    assert config.load({"HOST": ""}).host == ""  # taken as written: every interface


def test_values_are_read_as_documented(tmp_path):
    secret = "s" * 20
    settings = config.load({
        "API_KEYS": f"acme:auditor:{secret}, beta:{secret},gamma:{secret}:with-colon",
        "CORS_ALLOW_ORIGINS": " https://a.example ,, https://b.example ",
        "DATABASE_URL": "postgresql://db/qc", "DB_PREPARE_THRESHOLD": "Off",
        "EXPORT_DIR": str(tmp_path / "x"), "LOG_LEVEL": "debug", "ALERT_DISPATCH": " no ",
        "WORKER_HEARTBEAT_SECONDS": "3", "FORWARDED_ALLOW_IPS": " 10.0.0.1 "})
    assert [(k.tenant, k.role, k.secret) for k in settings.api_keys] == [
        ("acme", "auditor", secret), ("beta", "operator", secret),
        ("gamma", "operator", f"{secret}:with-colon")]
    assert settings.cors_allow_origins == ("https://a.example", "https://b.example")
    assert settings.database_migrate_url == "postgresql://db/qc"  # DATABASE_URL when unset
    assert settings.db_prepare_threshold is None and settings.log_level == "DEBUG"
    assert settings.export_dir == tmp_path / "x" and settings.alert_dispatch is False
    assert settings.worker_heartbeat == 3.0 and settings.forwarded_allow_ips == "10.0.0.1"
    assert secret not in repr(settings)


def test_the_process_environment_is_read_by_name_and_case(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_PER_TENANT", "7")
    monkeypatch.setenv("rate_limit_burst", "9")  # not the variable's name
    monkeypatch.setenv("EMAIL_RECIPIENTS", "a@example.com,b@example.com")
    settings = config.load()
    assert settings.rate_limit_per_tenant == 7 and settings.rate_limit_burst == 400
    assert settings.email_recipients == ("a@example.com", "b@example.com")
    assert config.load({}).rate_limit_per_tenant == 200  # a given mapping is all that is read
    monkeypatch.setenv("PORT", "-1")
    with pytest.raises(ConfigError, match=r"^PORT must be >= 1$"):
        config.load()


def test_settings_in_code_take_field_names():
    settings = Settings(port=1234, email_recipients=("x@example.com",))
    assert settings.port == 1234 and settings.email_recipients == ("x@example.com",)
    assert settings.model_copy(update={"port": 1}).port == 1


def test_api_keys_parsing():
    keys = parse_api_keys("acme:viewer:secret-1234567890, globex:op-secret-1234567")
    assert [(k.tenant, k.role, k.secret) for k in keys] == [
        ("acme", "viewer", "secret-1234567890"), ("globex", "operator", "op-secret-1234567")]
    with pytest.raises(ConfigError, match="entry 1"):
        parse_api_keys("bad tenant!:admin:secret-123456")
    with pytest.raises(ConfigError, match="at least 16"):
        parse_api_keys("acme:admin:only-15-chars-x")


def test_env_sample_lists_every_variable_the_settings_read():
    root = Path(__file__).resolve().parents[2]
    read = set(ENV_NAMES.values())
    sample = (root / "config" / "collector.env.sample").read_text()
    documented = set(re.findall(r"^#?([A-Z_]+)=", sample, re.MULTILINE))
    assert read and read <= documented, f"missing from the sample: {sorted(read - documented)}"
