"""The four notification channels: Slack incoming webhooks, PagerDuty Events API v2,
email over SMTP and a generic webhook signed with HMAC-SHA256 — what each message looks
like, how it is sent, and what an answer means (delivered, retry later, or give up).

Errors are reported with every secret of the channel removed, so they can be stored in
the delivery log and logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import re
import smtplib
import time
from dataclasses import dataclass
from datetime import UTC
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from app.config import Settings
from app.services.alerts.channel_secrets import secret_strings
from app.services.alerts.ssrf_guard import TargetRefused, check_url

PD_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}
RETRY_AFTER_CAP = 3600.0
TRANSIENT_HTTP = {408, 425, 429}


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, as every channel renders it."""

    id: str
    delivery_id: str
    tenant: str
    rule_id: str
    rule_name: str
    dedup_key: str
    kind: str  # first | summary
    level: str  # info | warning | error | critical
    summary: str
    matches: int
    window_start: str
    window_end: str
    details: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """The JSON body of a webhook, and the facts of every other rendering."""
        return {"id": self.id, "tenant": self.tenant,
                "rule": {"id": self.rule_id, "name": self.rule_name},
                "dedup_key": self.dedup_key, "kind": self.kind, "level": self.level,
                "summary": self.summary, "matches": self.matches,
                "window": {"start": self.window_start, "end": self.window_end},
                "details": self.details}


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False  # retrying cannot help: give up on this channel now


def backoff(attempts: int, *, base: float, cap: float, retry_after: float | None = None,
            rng: Any = random.random) -> float:
    """Seconds before the next attempt: exponential in the attempts made, with equal
    jitter (half fixed, half random, so retries of many deliveries spread out); never
    less than a Retry-After the receiver asked for (capped at an hour)."""
    step = min(cap, base * 2 ** max(0, attempts - 1))
    delay = step / 2 + rng() * step / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - (now or time.time()))


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "…")
    return text[:500]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: HMAC-SHA256 over "<timestamp>.<body>", hex."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# -- renderings ---------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _facts(message: Message) -> list[str]:
    d = message.details
    lines = []
    if message.kind == "first" and d.get("report"):
        report = d["report"]
        lines.append(f"report {report.get('id')}: {report.get('severity')} / {report.get('status')}"
                     f" from {report.get('source')} ({report.get('subject')})")
        counts = report.get("counts") or {}
        if counts:
            lines.append(f"checks: {counts.get('fail', 0)} fail, {counts.get('warn', 0)} warn, "
                         f"{counts.get('pass', 0)} pass")
        if report.get("labels"):
            lines.append("labels: " + ", ".join(f"{k}={v}" for k, v in report["labels"].items()))
    for key, value in (d.get("facts") or {}).items():
        lines.append(f"{key}: {value}")
    lines.append(f"window {message.window_start} - {message.window_end}")
    lines.append(f"dedup key {message.dedup_key}")
    return lines


def slack_payload(message: Message) -> dict[str, Any]:
    title = f"[{message.level}] {message.summary}"
    return {
        "text": title,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(title[:2900])}*"}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": _escape("\n".join(_facts(message))[:2900])}]},
        ],
    }


def pagerduty_payload(message: Message, routing_key: str) -> dict[str, Any]:
    report = message.details.get("report") or {}
    payload: dict[str, Any] = {
        "summary": message.summary[:1024],
        "severity": PD_SEVERITY[message.level],
        "source": f"qc-collector/{message.tenant}",
        "group": message.rule_name[:100],
        "class": message.kind,
        "custom_details": message.document(),
    }
    if report.get("source"):
        payload["component"] = str(report["source"])[:100]
    return {"routing_key": routing_key, "event_action": "trigger",
            "dedup_key": message.dedup_key, "payload": payload,
            "client": "QC Collector"}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_value(value: str) -> str:
    """A header value from report data: control characters (CR, LF, tab, ...) become one
    space — the email library refuses a header with a line break (the send would fail)
    and another transport might let it start a new header."""
    return _CONTROL.sub(" ", value)


def email_message(message: Message, *, sender: str, to: list[str]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = header_value(f"[QC Collector] [{message.level}] {message.summary}")[:250]
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["X-QCC-Dedup-Key"] = header_value(message.dedup_key)
    mail.set_content(f"{message.summary}\n\n" + "\n".join(_facts(message)) + "\n")
    return mail


# -- sending ------------------------------------------------------------------------


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                secrets: list[str], *, allow_private: bool) -> Outcome:
    try:
        check_url(url, allow_private=allow_private)
        response = await client.post(url, content=body,
                                     headers={"Content-Type": "application/json", **headers})
    except TargetRefused as exc:
        return Outcome(False, error=redact(f"refused: {exc}", secrets), permanent=True)
    except httpx.TimeoutException as exc:
        return Outcome(False, error=f"timeout ({exc.__class__.__name__})")
    except httpx.HTTPError as exc:
        return Outcome(False, error=redact(f"{exc.__class__.__name__}: {exc}", secrets))
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(True, status)
    retry_after = parse_retry_after(response.headers.get("retry-after")) \
        if status in (429, 503) else None
    # a 4xx other than a timeout or a rate limit will not change by retrying
    permanent = 400 <= status < 500 and status not in TRANSIENT_HTTP
    return Outcome(False, status, f"HTTP {status}", retry_after=retry_after, permanent=permanent)


def _smtp_send(settings: Settings, mail: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.alert_send_timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(mail)


async def _email(settings: Settings, message: Message, to: list[str]) -> Outcome:
    if not settings.smtp_host:
        return Outcome(False, error="SMTP_HOST is not configured", permanent=True)
    mail = email_message(message, sender=settings.smtp_from, to=to)
    try:
        await asyncio.wait_for(asyncio.to_thread(_smtp_send, settings, mail),
                               timeout=settings.alert_send_timeout * 3)
    except smtplib.SMTPRecipientsRefused:
        return Outcome(False, error="SMTP: every recipient refused", permanent=True)
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, exc.smtp_code, f"SMTP {exc.smtp_code}",
                       permanent=500 <= exc.smtp_code < 600)
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        return Outcome(False, error=f"SMTP: {exc.__class__.__name__}")
    return Outcome(True, 250)


async def send(client: httpx.AsyncClient, settings: Settings, channel: dict[str, Any],
               message: Message) -> Outcome:
    """One attempt on one channel."""
    secrets = secret_strings(channel)
    allow = settings.alerts_allow_private_targets
    kind = channel["type"]
    headers = {"X-QCC-Dedup-Key": message.dedup_key, "X-QCC-Delivery": message.delivery_id}
    if kind == "slack":
        return await _post(client, channel["url"], orjson.dumps(slack_payload(message)), headers,
                           secrets, allow_private=allow)
    if kind == "pagerduty":
        body = orjson.dumps(pagerduty_payload(message, channel["routing_key"]))
        return await _post(client, settings.pagerduty_events_url, body, headers, secrets,
                           allow_private=allow)
    if kind == "webhook":
        body = orjson.dumps(message.document())
        stamp = str(int(time.time()))
        headers.update({"X-QCC-Timestamp": stamp,
                        "X-QCC-Signature": signature(channel["secret"], stamp, body)})
        return await _post(client, channel["url"], body, headers, secrets, allow_private=allow)
    if kind == "email":
        return await _email(settings, message, list(channel["to"]))
    return Outcome(False, error=f"unknown channel type {kind}", permanent=True)


