"""Alerts end to end, with real receivers on 127.0.0.1: an HTTP server standing in for
Slack, PagerDuty and webhooks (answering 200, 500, 429 with Retry-After, or hanging) and a
real SMTP server. An API server and TWO workers (two dispatchers racing for the same
work, so every exact count below also proves that no notification is sent twice) run
with a short dedup window on the session database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.factories import alert_rule, headers, report
from tests.waiting import wait_until
from tools.liveserver import LiveServer, LiveWorker, free_port, start_server, start_worker

WINDOW = 6
ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode()


@dataclass
class Hit:
    at: float
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Routes of a threaded HTTP server; each answers by a script and records every hit."""

    server: HTTPServer
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def route(self, path: str, script: Callable[[int], tuple[int, dict[str, str], float]]) -> str:
        """script(n) -> (status, headers, seconds to hang first) for the n-th request."""
        self.hits.setdefault(path, [])

        def handle(request: Request) -> Response:
            with self.lock:
                n = len(self.hits[path])
                status, extra, hang = script(n)
                self.hits[path].append(Hit(time.time(), status, request.get_data(),
                                           dict(request.headers)))
            if hang:
                time.sleep(hang)
            return Response("ok" if status < 300 else "nope", status=status, headers=extra)

        self.server.expect_request(path, method="POST").respond_with_handler(handle)
        return self.url(path)

    def ok(self, path: str) -> list[Hit]:
        return [h for h in self.hits.get(path, []) if 200 <= h.status < 300]


def always(status: int, **extra: str) -> Callable[[int], tuple[int, dict[str, str], float]]:
    return lambda n: (status, extra, 0.0)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        return [message_from_bytes(c) for rcpt, c in self.messages if address in rcpt]


@dataclass
class Stack:
    server: LiveServer
    workers: list[LiveWorker]
    receiver: Receiver
    mailbox: Mailbox
    http: httpx.Client
    secrets: list[str] = field(default_factory=list)

    def pagerduty(self, routing_key: str) -> list[Hit]:
        return [h for h in self.receiver.ok("/pd") if h.json()["routing_key"] == routing_key]


@pytest.fixture(scope="module")
def stack(database, tmp_path_factory) -> Iterator[Stack]:
    receiver = Receiver(HTTPServer(host="127.0.0.1", port=free_port(), threaded=True))
    receiver.server.start()
    receiver.route("/pd", always(202))
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {
        "ALERT_DEDUP_WINDOW": str(WINDOW), "ALERTS_ALLOW_PRIVATE_TARGETS": "true",
        "ALERT_POLL_SECONDS": "0.2", "ALERT_MAX_ATTEMPTS": "4",
        "ALERT_RETRY_BASE_SECONDS": "0.3", "ALERT_RETRY_MAX_SECONDS": "1",
        "ALERT_SEND_TIMEOUT": "1", "PAGERDUTY_EVENTS_URL": receiver.url("/pd"),
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false",
        "SMTP_FROM": "qcc@test.example", "ENCRYPTION_KEY": ENCRYPTION_KEY,
    }
    run_dir = tmp_path_factory.mktemp("alerts")
    server = start_server(database, workers=1, env=env, run_dir=run_dir)
    workers = [start_worker(database, run_dir=run_dir, env=env, name=f"dispatcher-{i}")
               for i in range(2)]
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Stack(server, workers, receiver, mailbox, client)
    finally:
        client.close()
        for worker in workers:
            worker.stop()
        server.stop()
        smtp.stop()
        receiver.server.stop()


def token() -> str:
    return uuid.uuid4().hex


def make_rule(stack: Stack, source: str, channels: list[dict[str, Any]],
              fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    body = alert_rule(f"rule-{source}", channels=channels,
                      match={"severity": ["block"], "source": [source]})
    if fallback:
        body["fallback"] = fallback
    for channel in [*channels, *([fallback] if fallback else [])]:
        stack.secrets += [channel[k] for k in ("url", "routing_key", "secret") if k in channel]
    r = stack.http.post("/alert-rules", json=body, headers=headers())
    assert r.status_code == 201, r.text
    return r.json()


def ingest(stack: Stack, source: str, count: int = 1) -> None:
    for _ in range(count):
        r = stack.http.post("/ingest/qc", json=report(source=source), headers=headers(role="operator"))
        assert r.status_code == 201, r.text


def notifications(stack: Stack, rule_id: str, **params: Any) -> list[dict[str, Any]]:
    r = stack.http.get("/notifications", params={"rule_id": rule_id, **params},
                       headers=headers(role="operator"))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def by_channel(notification: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {("fallback:" if d["fallback"] else "") + d["type"]: d for d in notification["deliveries"]}


def test_ten_matching_reports_in_one_window_send_one_message_and_one_summary(stack):
    source, secret, routing_key = f"dedup-{token()[:8]}", f"whsec-{token()}", token()
    slack = stack.receiver.route(f"/a/slack/{token()}", always(200))
    hook = stack.receiver.route(f"/a/hook/{token()}", always(200))
    rule = make_rule(stack, source, [
        {"type": "slack", "url": slack}, {"type": "pagerduty", "routing_key": routing_key},
        {"type": "email", "to": ["dedup@test.example"]},
        {"type": "webhook", "url": hook, "secret": secret}])
    slack_path, hook_path = httpx.URL(slack).path, httpx.URL(hook).path
    # start early enough in an (epoch-aligned) window for all ten to land in it
    if WINDOW - time.time() % WINDOW < 3.5:
        time.sleep(WINDOW - time.time() % WINDOW + 0.05)
    # a rejected batch (one invalid item) stores nothing and so alerts nothing
    bad = stack.http.post("/ingest/qc/batch", headers=headers(), json={
        "reports": [report(source=source), {**report(source=source), "observed_at": "yesterday"}]})
    assert bad.status_code == 422
    committed = time.time()
    ingest(stack, source, 10)

    first = wait_until(lambda: stack.receiver.ok(slack_path), 10, "the first message")[0]
    assert first.at - committed < 10
    wait_until(lambda: len(stack.receiver.ok(slack_path)) >= 2, WINDOW + 8, "the summary")
    wait_until(lambda: len(stack.mailbox.to("dedup@test.example")) >= 2, 5, "both emails")
    time.sleep(1.5)  # nothing more may follow

    slack_hits = stack.receiver.ok(slack_path)
    assert len(slack_hits) == 2, [h.json()["text"] for h in slack_hits]
    assert source in slack_hits[0].json()["text"]
    assert "+9 more" in slack_hits[1].json()["text"]
    mails = stack.mailbox.to("dedup@test.example")
    assert len(mails) == 2 and "+9 more" in mails[1]["Subject"]
    events = stack.pagerduty(routing_key)
    assert len(events) == 2
    items = notifications(stack, rule["id"])
    assert [i["kind"] for i in items] == ["summary", "first"] and [i["matches"] for i in items] == [9, 1]
    dedup_key = items[0]["dedup_key"]
    assert items[1]["dedup_key"] == dedup_key and len(dedup_key) == 32
    for event in events:
        body = event.json()
        assert body["event_action"] == "trigger" and body["dedup_key"] == dedup_key
        assert body["payload"]["severity"] == "critical" and body["payload"]["summary"]
    assert all(i["status"] == "delivered" and i["attempts"] == 4 for i in items)
    # the webhook: two signed bodies anyone with the secret can verify
    hook_hits = stack.receiver.ok(hook_path)
    assert len(hook_hits) == 2
    for hit in hook_hits:
        stamp = hit.headers["X-Qcc-Timestamp"]
        expected = hmac.new(secret.encode(), stamp.encode() + b"." + hit.body, hashlib.sha256)
        assert hmac.compare_digest(hit.headers["X-Qcc-Signature"], "sha256=" + expected.hexdigest())
        assert abs(int(stamp) - time.time()) < 60
        assert hit.json()["dedup_key"] == dedup_key
    assert {h.json()["kind"] for h in hook_hits} == {"first", "summary"}
    # another tenant's log shows none of it
    other = stack.http.get("/notifications", params={"rule_id": rule["id"]}, headers=headers("globex"))
    assert other.status_code == 200 and other.json()["items"] == []


def test_a_failing_channel_is_retried_alone_honouring_retry_after(stack):
    source, routing_key = f"retry-{token()[:8]}", token()
    slack = stack.receiver.route(f"/b/slack/{token()}", lambda n: (500 if n < 2 else 200, {}, 0.0))
    hook = stack.receiver.route(f"/b/hook/{token()}",
                                lambda n: (429, {"Retry-After": "2"}, 0.0) if n == 0 else (200, {}, 0.0))
    rule = make_rule(stack, source, [
        {"type": "slack", "url": slack}, {"type": "pagerduty", "routing_key": routing_key},
        {"type": "webhook", "url": hook, "secret": f"whsec-{token()}"}])
    slack_path, hook_path = httpx.URL(slack).path, httpx.URL(hook).path
    ingest(stack, source)
    wait_until(lambda: stack.receiver.ok(slack_path) and stack.receiver.ok(hook_path), 15,
               "both recovered channels")
    time.sleep(1.0)
    assert [h.status for h in stack.receiver.hits[slack_path]] == [500, 500, 200]
    hook_hits = stack.receiver.hits[hook_path]
    assert [h.status for h in hook_hits] == [429, 200]
    assert hook_hits[1].at - hook_hits[0].at >= 1.95, "Retry-After: 2 was not honoured"
    assert len(stack.pagerduty(routing_key)) == 1, "a channel that succeeded was sent again"
    (item,) = notifications(stack, rule["id"])
    channels = by_channel(item)
    assert channels["slack"]["attempts"] == 3 and channels["slack"]["last_error"] == "HTTP 500"
    assert channels["pagerduty"]["attempts"] == 1 and channels["pagerduty"]["last_status"] == 202
    assert channels["webhook"]["attempts"] == 2 and channels["webhook"]["last_error"] == "HTTP 429"
    assert item["status"] == "delivered" and item["attempts"] == 6


def test_a_channel_that_gives_up_hands_over_to_the_fallback_then_the_dead_letter_list(stack):
    saved_source, dead_source = f"fallback-{token()[:8]}", f"dead-{token()[:8]}"
    down = stack.receiver.route(f"/c/slack/{token()}", always(500))
    hook_down = stack.receiver.route(f"/c/hook/{token()}", always(503))
    also_down = stack.receiver.route(f"/c/slack2/{token()}", always(500))
    saved = make_rule(stack, saved_source, [{"type": "slack", "url": down}],
                      fallback={"type": "email", "to": ["fallback@test.example"]})
    dead = make_rule(stack, dead_source, [{"type": "webhook", "url": hook_down,
                                           "secret": f"whsec-{token()}"}],
                     fallback={"type": "slack", "url": also_down})
    ingest(stack, saved_source)
    ingest(stack, dead_source)
    wait_until(lambda: stack.mailbox.to("fallback@test.example"), 15, "the fallback email")
    (item,) = wait_until(lambda: notifications(stack, dead["id"], status="dead"), 15,
                         "the dead letter")
    channels = by_channel(item)
    assert channels["webhook"]["status"] == "failed" and channels["webhook"]["attempts"] == 4
    assert channels["webhook"]["last_error"] == "HTTP 503"
    assert channels["fallback:slack"]["status"] == "dead"
    assert channels["fallback:slack"]["attempts"] == 4
    assert len(stack.receiver.hits[httpx.URL(also_down).path]) == 4
    (rescued,) = notifications(stack, saved["id"])
    channels = by_channel(rescued)
    assert channels["slack"]["status"] == "failed" and channels["fallback:email"]["status"] == "delivered"
    assert rescued["status"] == "delivered"
    assert saved_source in stack.mailbox.to("fallback@test.example")[0]["Subject"]
    assert len(stack.receiver.hits[httpx.URL(down).path]) == 4  # max attempts, no more


def test_a_channel_down_for_a_while_then_back_gets_every_notification_exactly_once(stack):
    # the first request hangs past ALERT_SEND_TIMEOUT, the next three fail, then it is back
    def script(n: int) -> tuple[int, dict[str, str], float]:
        return (500, {}, 2.5) if n == 0 else ((500, {}, 0.0) if n < 4 else (200, {}, 0.0))

    slack = stack.receiver.route(f"/d/slack/{token()}", script)
    path = httpx.URL(slack).path
    sources = [f"flaky-{i}-{token()[:6]}" for i in range(3)]
    rules = [make_rule(stack, s, [{"type": "slack", "url": slack}]) for s in sources]
    for s in sources:
        ingest(stack, s)
    wait_until(lambda: len(stack.receiver.ok(path)) >= 3, 20, "three deliveries")
    time.sleep(1.5)
    delivered = [h.json()["text"] for h in stack.receiver.ok(path)]
    assert len(delivered) == 3
    assert all(sum(s in text for text in delivered) == 1 for s in sources), delivered
    assert len(stack.receiver.hits[path]) == 7  # four failures, three successes
    for rule in rules:
        (item,) = notifications(stack, rule["id"])
        assert item["status"] == "delivered" and item["deliveries"][0]["attempts"] >= 1


def test_secrets_never_appear_in_logs_or_responses(stack):
    assert stack.secrets, "the tests above registered channel secrets"
    texts = [stack.server.log(), *(w.log() for w in stack.workers)]
    hdrs = headers()
    texts.append(stack.http.get("/alert-rules", headers=hdrs).text)
    texts.append(stack.http.get("/notifications", params={"limit": 200}, headers=hdrs).text)
    texts.append(stack.http.get("/audit", params={"action": ["alert_rule.create"], "limit": 500},
                                headers=hdrs).text)
    assert "alert dispatcher started" in texts[1] and "alert delivered" in texts[1]
    for text in texts:
        for secret in stack.secrets:
            # URLs leak through their path (the token); keys and secrets as they are
            needle = httpx.URL(secret).path if secret.startswith("http") else secret
            assert needle not in text, f"a channel secret leaked: {needle[:8]}…"


SSRF_URLS = ["https://127.0.0.1/hook", "https://10.0.0.8/hook", "https://169.254.169.254/latest",
             "https://[::1]/hook", "https://localhost/hook", "https://metadata.google.internal/x",
             "http://hooks.example.com/plain-http"]


@pytest.mark.parametrize("url", SSRF_URLS)
def test_private_and_metadata_targets_are_refused_over_the_api(http, url):
    # the session server runs without ALERTS_ALLOW_PRIVATE_TARGETS
    r = http.post("/alert-rules", headers=headers(), json={
        "name": "ssrf", "channels": [{"type": "slack", "url": "https://hooks.example.com/ok"},
                                     {"type": "webhook", "url": url, "secret": "s" * 20}]})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    # an IPv6 literal is outside the URL's schema (host name or IPv4 only): /channels/1
    assert r.json()["errors"][0]["pointer"].startswith("/channels/1")


def test_rules_are_masked_audited_and_deleted(http):
    secret_path = f"/services/T000/B000/{token()}"
    made = http.post("/alert-rules", headers=headers(), json={
        "name": "audited", "match": {"labels": {"env": "prod"}},
        "channels": [{"type": "slack", "url": f"https://hooks.example.com{secret_path}"}],
        "fallback": {"type": "pagerduty", "routing_key": "R" * 32}})
    assert made.status_code == 201, made.text
    rule = made.json()
    assert rule["channels"] == [{"type": "slack", "target": f"https://hooks.example.com/…{secret_path[-4:]}"}]
    assert rule["fallback"] == {"type": "pagerduty", "target": "routing key …RRRR"}
    listed = http.get("/alert-rules", headers=headers(role="operator"))
    assert rule in listed.json()["items"] and secret_path not in listed.text
    assert http.get("/alert-rules", headers=headers(role="operator",
                    **{"If-None-Match": listed.headers["etag"]})).status_code == 304
    assert http.delete(f"/alert-rules/{rule['id']}", headers=headers()).status_code == 204
    assert http.delete(f"/alert-rules/{rule['id']}", headers=headers()).status_code == 404
    assert rule["id"] not in http.get("/alert-rules", headers=headers()).text
    audit = http.get("/audit", params={"action": ["alert_rule.create", "alert_rule.delete"],
                                       "limit": 500}, headers=headers()).json()["items"]
    actions = [e["action"] for e in audit if e["target"]["id"] == rule["id"]]
    assert actions == ["alert_rule.delete", "alert_rule.create"]
    assert secret_path not in orjson.dumps(audit).decode()
