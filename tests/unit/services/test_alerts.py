"""Alerts without a database: sealed secrets, masks, the SSRF guard, backoff, Retry-After,
webhook signatures, renderings, the delivery jobs' retry decisions and schedules, the
keyring, header values, the IPv6 forms of the SSRF guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from app import config, worker
from app.config import ConfigError, Settings
from app.services.alerts import channel_secrets, channels, delivery, ssrf_guard
from app.services.alerts.channels import Message, backoff, header_value, parse_retry_after, redact, signature
from app.services.alerts.ssrf_guard import TargetRefused, address_allowed, check_url
from app.services.ops import system_alerts

SLACK = "https://hooks.slack.com/services/T0001/B0001/abcdefghijklmnopqrstuvwx"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec-0123456789-abcdefghij"


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_sealed_channel_secrets_open_only_in_their_row_and_under_their_key(tmp_path):
    vault = channel_secrets.vault(Settings(data_dir=tmp_path, encryption_key=key()))
    sealed = vault.seal({"url": SLACK}, context=channel_secrets.rule_context("acme", "r1"))
    assert SLACK.encode() not in sealed and b"hooks.slack" not in sealed
    assert vault.open(sealed, context=channel_secrets.rule_context("acme", "r1")) == {"url": SLACK}
    with pytest.raises(channel_secrets.SecretsUnreadable):  # copied into another tenant's row
        vault.open(sealed, context=channel_secrets.rule_context("globex", "r1"))
    with pytest.raises(channel_secrets.SecretsUnreadable, match="another ENCRYPTION_KEY"):
        channel_secrets.Vault(os.urandom(32)).open(sealed, context=channel_secrets.rule_context("acme", "r1"))
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(channel_secrets.SecretsUnreadable):
        vault.open(tampered, context=channel_secrets.rule_context("acme", "r1"))


def test_encryption_key_is_required_in_production_and_generated_elsewhere(tmp_path):
    with pytest.raises(ConfigError, match="ENCRYPTION_KEY is required"):
        channel_secrets.vault(Settings(environment="production", data_dir=tmp_path))
    with pytest.raises(ConfigError, match="32 bytes"):
        channel_secrets.vault(Settings(data_dir=tmp_path,
                                       encryption_key=base64.b64encode(b"x" * 16).decode()))
    dev = channel_secrets.vault(Settings(data_dir=tmp_path / "dev"))
    assert (tmp_path / "dev" / "encryption-key").stat().st_mode & 0o077 == 0
    again = channel_secrets.vault(Settings(data_dir=tmp_path / "dev", log_level="DEBUG"))
    assert again.key_id == dev.key_id  # the same generated key for the API and the worker


def test_masked_views_never_show_a_secret():
    views = [channel_secrets.view(c) for c in (
        {"type": "slack", "url": SLACK},
        {"type": "pagerduty", "routing_key": ROUTING_KEY},
        {"type": "webhook", "url": "https://hooks.example.com/qc/T0K3N-in-the-path-0001",
         "secret": WEBHOOK_SECRET},
        {"type": "email", "to": ["ops@example.com"]})]
    assert views[0] == {"type": "slack", "target": "https://hooks.slack.com/…uvwx"}
    assert views[1] == {"type": "pagerduty", "target": "routing key …cdef"}
    assert views[2]["target"] == "https://hooks.example.com/…0001 (signed)"
    assert views[3]["target"] == "ops@example.com"
    text = repr(views)
    for secret in ("T0001/B0001", ROUTING_KEY, WEBHOOK_SECRET, "T0K3N"):
        assert secret not in text
    assert channel_secrets.target({"type": "pagerduty", "routing_key": "short"}) == "routing key …"


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/x",          # plain http
    "https://127.0.0.1/x", "https://10.1.2.3/x", "https://192.168.0.10/x", "https://172.16.5.4/x",
    "https://169.254.169.254/latest/meta-data/", "https://[::1]/x", "https://[fd00:ec2::254]/x",
    "https://[::ffff:127.0.0.1]/x", "https://100.64.0.1/x", "https://0.0.0.0/x",
    "https://localhost/x", "https://foo.localhost/x", "https://metadata.google.internal/x",
    "https://user:pass@hooks.example.com/x", "ftp://hooks.example.com/x", "https:///x",
])
def test_the_ssrf_guard_refuses_private_local_and_metadata_targets(url):
    with pytest.raises(TargetRefused):
        check_url(url, allow_private=False)


def test_the_ssrf_guard_allows_public_https_and_private_only_when_told():
    check_url(SLACK, allow_private=False)
    check_url("https://8.8.8.8/hook", allow_private=False)
    check_url("http://127.0.0.1:8080/hook", allow_private=True)
    assert ssrf_guard.address_allowed("1.1.1.1")
    assert not ssrf_guard.address_allowed("::ffff:10.0.0.1")


async def test_the_guard_checks_every_resolved_address_at_connect_time():
    # a name that passes the static check but resolves to loopback (DNS rebinding) is
    # refused where the connection is made, whatever the URL looked like
    backend = ssrf_guard.GuardedBackend(allow_private=False)
    with pytest.raises(TargetRefused, match="non-public"):
        await backend.connect_tcp("localhost", 443)
    async with ssrf_guard.client(allow_private=False, timeout=2) as client:
        with pytest.raises(TargetRefused):
            await client.get("https://localhost:1/")
    outcome = await channels._post(
        httpx.AsyncClient(), "https://127.0.0.1/x", b"{}", {}, [], allow_private=False)
    assert not outcome.ok and outcome.permanent and "refused" in (outcome.error or "")


def test_backoff_is_exponential_with_jitter_and_honours_retry_after():
    low = [backoff(n, base=1, cap=60, rng=lambda: 0.0) for n in range(1, 8)]
    high = [backoff(n, base=1, cap=60, rng=lambda: 1.0) for n in range(1, 8)]
    assert low == [0.5, 1, 2, 4, 8, 16, 30] and high == [1, 2, 4, 8, 16, 32, 60]
    assert 4 <= backoff(4, base=1, cap=60) <= 8
    assert backoff(1, base=1, cap=60, retry_after=7) == 7  # the receiver's wish wins
    assert backoff(6, base=1, cap=60, retry_after=1, rng=lambda: 1.0) == 32  # never sooner
    assert backoff(1, base=1, cap=60, retry_after=10**6) == 3600


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("120") == 120
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 31
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def message(**overrides: object) -> Message:
    fields: dict = {
        "id": "n1", "delivery_id": "d1", "tenant": "acme", "rule_id": "r1", "rule_name": "blockers",
        "dedup_key": "k" * 32, "kind": "first", "level": "critical",
        "summary": "blockers: block report (fail) from etl-nightly (dataset:orders)", "matches": 1,
        "window_start": "2026-11-21T02:00:00Z", "window_end": "2026-11-21T02:05:00Z",
        "details": {"report": {"id": "x", "source": "etl-nightly", "subject": "dataset:orders",
                               "severity": "block", "status": "fail", "labels": {"env": "prod"},
                               "counts": {"pass": 1, "warn": 0, "fail": 1}}}}
    fields.update(overrides)
    return Message(**fields)


def test_webhook_signature_is_hmac_sha256_over_timestamp_and_body():
    body = b'{"a":1}'
    expected = hmac.new(WEBHOOK_SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(WEBHOOK_SECRET, "1700000000", body) == f"sha256={expected}"


def test_renderings_carry_the_dedup_key_and_pagerduty_fields():
    pd = channels.pagerduty_payload(message(), ROUTING_KEY)
    assert pd["event_action"] == "trigger" and pd["dedup_key"] == "k" * 32
    assert pd["routing_key"] == ROUTING_KEY
    assert pd["payload"]["severity"] == "critical" and pd["payload"]["source"] == "qc-collector/acme"
    assert pd["payload"]["summary"].startswith("blockers:")
    slack = channels.slack_payload(message(summary="a <b> & c"))
    assert slack["text"].startswith("[critical]") and "&lt;b&gt; &amp;" in slack["blocks"][0]["text"]["text"]
    mail = channels.email_message(message(), sender="qcc@example.com", to=["ops@example.com"])
    assert mail["X-QCC-Dedup-Key"] == "k" * 32 and "dataset:orders" in mail.get_content()


def test_errors_are_redacted_before_they_are_stored_or_logged():
    assert redact(f"ConnectError: cannot reach {SLACK}", [SLACK]) == "ConnectError: cannot reach …"


def test_alert_settings_parse_and_refuse_nonsense():
    settings = config.load({"ALERT_DEDUP_WINDOW": "60", "ALERT_RETRY_BASE_SECONDS": "0.25",
                            "EMAIL_RECIPIENTS": "a@example.com, b@example.com",
                            "ALERTS_ALLOW_PRIVATE_TARGETS": "true", "SMTP_STARTTLS": "false"})
    assert settings.alert_dedup_window == 60 and settings.alert_retry_base_seconds == 0.25
    assert settings.email_recipients == ("a@example.com", "b@example.com")
    assert settings.alerts_allow_private_targets and not settings.smtp_starttls
    for bad in ({"ALERT_DEDUP_WINDOW": "0"}, {"ALERT_POLL_SECONDS": "nan"},
                {"ALERT_RETRY_BASE_SECONDS": "fast"}):
        with pytest.raises(ConfigError):
            config.load(bad)
    secret = settings.model_copy(update={"slack_webhook_url": SLACK, "encryption_key": key()})
    assert SLACK not in repr(secret)


def test_system_channels_page_pagerduty_only_when_critical():
    settings = Settings(slack_webhook_url=SLACK, pagerduty_integration_key=ROUTING_KEY,
                        email_recipients=("sre@example.com",))
    assert [c["type"] for _, c in system_alerts.channels(settings, "critical")] == \
        ["slack", "email", "pagerduty"]
    assert [c["type"] for _, c in system_alerts.channels(settings, "warning")] == ["slack", "email"]
    assert system_alerts.channels(Settings(), "critical") == []
    key_a = system_alerts.dedup_key(":system", system_alerts.rule_id("x", "error"), 600, 300)
    assert len(key_a) == 32 and key_a != system_alerts.dedup_key(
        ":system", system_alerts.rule_id("x", "error"), 900, 300)


def _job(attempts: int) -> Any:
    from procrastinate.jobs import Job

    return Job(id=1, queue="alerts", lock=None, queueing_lock=None,
               task_name="alerts.deliver", attempts=attempts)


def test_a_failed_delivery_runs_again_after_its_recorded_delay_and_other_failures_back_off():
    strategy = worker.DeliveryRetry(Settings(alert_retry_base_seconds=1, alert_retry_max_seconds=8))
    now = datetime.now(UTC)
    # the delay the service recorded (at least a receiver's Retry-After) is the job's wait
    decision = strategy.get_retry_decision(exception=delivery.DeliveryFailed(30.0, "HTTP 429"),
                                           job=_job(0))
    assert decision is not None and decision.retry_at is not None
    assert timedelta(seconds=29) < decision.retry_at - now < timedelta(seconds=31)
    # the database gone mid-delivery: exponential (capped) backoff, then the job gives up
    decision = strategy.get_retry_decision(exception=ConnectionError(), job=_job(6))
    assert decision is not None and decision.retry_at is not None
    assert timedelta(seconds=3.9) < decision.retry_at - now < timedelta(seconds=8.1)
    assert strategy.get_retry_decision(exception=ConnectionError(),
                                       job=_job(worker.UNEXPECTED_RETRIES)) is None


@pytest.mark.parametrize(("seconds", "cron"), [
    (1, "* * * * * */1"), (7, "* * * * * */6"), (45, "* * * * * */30"),
    (60, "*/1 * * * * 0"), (600, "*/10 * * * * 0"), (7200, "0 * * * * 0")])
def test_periodic_jobs_tick_evenly_near_the_interval_asked(seconds, cron):
    assert worker.every(seconds) == cron


def test_a_worker_without_alert_dispatch_does_not_take_alert_jobs():
    queues, concurrency, polling = worker.listening(Settings(alert_dispatch=False))
    assert queues == ["exports", "maintenance"] and concurrency == 2 and polling == 5.0
    queues, concurrency, polling = worker.listening(Settings(alert_poll_seconds=0.2))
    assert queues == ["exports", "maintenance", "alerts"]
    assert concurrency == 2 + worker.ALERT_CONCURRENCY and polling == 0.2


def test_the_system_tenant_is_one_no_api_key_can_have():
    assert not config.TENANT_PATTERN.match(system_alerts.SYSTEM_TENANT)
    with pytest.raises(ConfigError):
        config.load({"API_KEYS": f"{system_alerts.SYSTEM_TENANT}:admin:" + "s" * 32})


def test_routine_job_lines_stay_out_of_the_worker_log_but_their_problems_do_not():
    import logging

    def record(level: int, task: str, exc: BaseException | None = None) -> logging.LogRecord:
        rec = logging.LogRecord("procrastinate.worker", level, __file__, 1, "Job ended", None,
                                (type(exc), exc, None) if exc else None)
        rec.job = {"task_name": task}
        return rec

    assert not worker._not_routine(record(logging.INFO, "alerts.announce"))
    assert worker._not_routine(record(logging.ERROR, "alerts.announce"))
    assert worker._not_routine(record(logging.INFO, "export"))
    retried = record(logging.INFO, "alerts.deliver", delivery.DeliveryFailed(2.0, "HTTP 500"))
    assert worker._not_routine(retried) and retried.exc_info is None  # no traceback for it


def test_the_keyring_opens_old_seals_and_reseals_under_the_current_key() -> None:
    old, new = b"o" * 32, b"n" * 32
    sealed = channel_secrets.Vault(old).seal({"url": "https://x"}, context="ctx")
    ring = channel_secrets.Vault(new, (old,))
    assert ring.open(sealed, context="ctx") == {"url": "https://x"} and not ring.current(sealed)
    fresh = ring.reseal(sealed, context="ctx")
    assert ring.current(fresh) and channel_secrets.Vault(new).open(fresh, context="ctx")
    with pytest.raises(channel_secrets.SecretsUnreadable):
        channel_secrets.Vault(new).open(sealed, context="ctx")
    with pytest.raises(channel_secrets.SecretsUnreadable):
        ring.open(fresh, context="another rule")


def test_header_values_lose_control_characters() -> None:
    assert header_value("a\r\nBcc: x\tb\x00") == "a Bcc: x b "


@pytest.mark.parametrize(("address", "allowed"), [
    ("::127.0.0.1", False), ("::ffff:0:7f00:1", False), ("64:ff9b::7f00:1", False),
    ("2002:7f00:1::", False), ("::ffff:10.0.0.1", False), ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
    ("64:ff9b:1::808:808", False), ("::1", False), ("::", False), ("fe80::1%eth0", False),
    ("64:ff9b::808:808", True), ("2002:808:808::1", True), ("::ffff:8.8.8.8", True),
    ("2606:4700:4700::1111", True), ("8.8.8.8", True), ("10.1.2.3", False),
])
def test_ipv6_forms_are_judged_by_their_embedded_ipv4(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed
