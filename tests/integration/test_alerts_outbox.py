"""The alert outbox and system alerts on a real PostgreSQL, with the delivery jobs run by
an in-process procrastinate worker."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest
from pytest_httpserver import HTTPServer

from app import worker
from app.config import Settings
from app.services.access.principal import Principal
from app.services.alerts import delivery
from app.services.alerts import rules as alert_rules
from app.services.ingest import service as ingest
from app.services.ingest.submissions import prepare_all
from app.services.ops import system_alerts
from app.storage.db import Database
from tests.factories import small_report, store
from tools.liveserver import free_port

KEY = base64.b64encode(b"i" * 32).decode()


def submission(source: str, severity: str) -> dict[str, Any]:
    return small_report(source=source, subject="s", severity=severity, labels={"env": "prod"})


def windows(database: Any, tenant: str) -> list[tuple[int, int]]:
    with psycopg.connect(database.owner_url) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT matched, announced FROM alert_windows WHERE tenant_id = %s", (tenant,))]


async def test_matches_are_written_in_the_ingest_transaction_and_roll_back_with_it(
        db, database, tmp_path):
    tenant = f"outbox-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=tmp_path, encryption_key=KEY)
    admin = Principal(tenant=tenant, role="admin", key_id=uuid.uuid4())
    await alert_rules.create_rule(db=db, settings=settings, principal=admin, request={
        "name": "prod blockers", "match": {"severity": ["block"], "labels": {"env": "prod"}},
        "channels": [{"type": "slack", "url": "https://hooks.example.com/x"}]})
    mixed = [submission("a", "block"), submission("b", "warn"), submission("c", "block")]
    # a transaction that fails after the write (as a group commit can) leaves no match
    async with db.system() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await ingest.write(conn, [ingest.Work(tenant, prepare_all(
                    mixed, tenant=tenant, batch=True))], alert_window=3600)
                raise RuntimeError("the commit fails")
    assert windows(database, tenant) == []
    await store(db, tenant, mixed, [submission("d", "block")], alert_window=3600)
    assert windows(database, tenant) == [(3, 0)]  # two + one block reports, one window


async def test_a_tenant_without_rules_pays_one_probe_of_its_rules_for_the_outbox(db):
    tenant = f"no-rules-{uuid.uuid4().hex[:8]}"
    works = [ingest.Work(tenant, prepare_all([submission("a", "block"), submission("b", "block")],
                                             tenant=tenant, batch=True))]
    async with db.system() as conn, conn.transaction():
        await ingest.write(conn, works, alert_window=300)
        cur = await conn.execute(
            "SELECT relname, seq_scan + idx_scan FROM pg_stat_xact_user_tables"
            " WHERE relname IN ('alert_rules', 'reports')")
        scans = dict(await cur.fetchall())
    # the rules' EXISTS is a one-time filter: one probe of alert_rules, and the reports just
    # written are never read back to be matched
    assert scans.get("alert_rules") == 1, scans
    assert scans.get("reports", 0) == 0, scans


@pytest.fixture
def receiver() -> Any:
    server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
    server.expect_request("/slack", method="POST").respond_with_data("ok")
    server.expect_request("/pd", method="POST").respond_with_data("ok", status=202)
    server.start()
    yield server
    server.stop()


def posted(server: HTTPServer, path: str) -> list[dict[str, Any]]:
    return [orjson.loads(request.get_data()) for request, _ in server.log if request.path == path]


def system_settings(server: HTTPServer, tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path, encryption_key=KEY, alerts_allow_private_targets=True,
                    slack_webhook_url=server.url_for("/slack"),
                    pagerduty_integration_key="P" * 32,
                    pagerduty_events_url=server.url_for("/pd"), alert_send_timeout=2)


async def test_system_alerts_are_deduplicated_and_critical_ones_page(migrated_db, receiver, tmp_path):
    settings = system_settings(receiver, tmp_path).model_copy(
        update={"database_url": migrated_db.conninfo, "worker_heartbeat": 1.0})
    await system_alerts.sync_rules(db=migrated_db, settings=settings)
    for _ in range(3):  # e.g. three workers seeing the same dead letters in one window
        await system_alerts.raise_alert(db=migrated_db, settings=settings, check="dead_letters",
                                        level="error", facts={"dead_deliveries": 2})
    await system_alerts.raise_alert(db=migrated_db, settings=settings, check="database_capacity",
                                    level="critical", facts={"percent": 101.0})
    assert await delivery.announce(db=migrated_db) == 2
    assert await delivery.announce(db=migrated_db) == 0  # the repeats wait for the summary
    await run_alert_jobs(migrated_db, settings)
    slack = [m["text"] for m in posted(receiver, "/slack")]
    assert len(slack) == 2, slack  # one message per alert
    assert any("dead-lettered" in t and "[error]" in t for t in slack)
    assert any("size threshold" in t and "[critical]" in t for t in slack)
    (page,) = posted(receiver, "/pd")  # only the critical one pages
    assert page["payload"]["severity"] == "critical" and page["routing_key"] == "P" * 32
    # the SQL's dedup key (the outbox) and Python's (the direct path) are the same hash
    start = datetime.fromisoformat(page["payload"]["custom_details"]["window"]["start"])
    assert page["dedup_key"] == system_alerts.dedup_key(
        system_alerts.SYSTEM_TENANT, system_alerts.rule_id("database_capacity", "critical"),
        int(start.timestamp()), 300)


def jobs(db: Database, task: str) -> list[str]:
    with psycopg.connect(db.conninfo) as conn:
        return [r[0] for r in conn.execute(
            "SELECT status FROM procrastinate_jobs WHERE task_name = %s ORDER BY id", (task,))]


async def run_alert_jobs(db: Database, settings: Settings) -> None:
    """A procrastinate worker on the alert queue, until no job is due."""
    http = delivery.client(settings)
    try:
        app = worker.build(settings, db, http)
        async with app.open_async():
            await app.run_worker_async(queues=[worker.ALERT_QUEUE], wait=False,
                                       install_signal_handlers=False)
    finally:
        await http.aclose()


async def test_an_ssrf_refusal_at_send_time_hands_over_to_the_fallback_then_the_dead_letters(
        migrated_db, receiver, tmp_path):
    tenant = "ssrf-fallback"
    # the rule was accepted where private targets were allowed; the sending worker refuses
    created = Settings(data_dir=tmp_path, encryption_key=KEY, alerts_allow_private_targets=True)
    sending = created.model_copy(update={
        "alerts_allow_private_targets": False, "alert_max_attempts": 5,
        "database_url": migrated_db.conninfo, "pagerduty_events_url": receiver.url_for("/pd")})
    admin = Principal(tenant=tenant, role="admin", key_id=uuid.uuid4())
    rule = await alert_rules.create_rule(db=migrated_db, settings=created, principal=admin, request={
        "name": "guarded", "match": {"severity": ["block"]},
        "channels": [{"type": "webhook", "url": receiver.url_for("/hook"), "secret": "s" * 20}],
        "fallback": {"type": "pagerduty", "routing_key": "F" * 32}})
    await store(migrated_db, tenant, [submission("a", "block")])
    assert jobs(migrated_db, "alerts.deliver") == []
    assert await delivery.announce(db=migrated_db) == 1
    # the delivery row and its job were committed together
    assert jobs(migrated_db, "alerts.deliver") == ["todo"]
    await run_alert_jobs(migrated_db, sending)
    assert receiver.log == []  # no request ever reached a refused (private, http) target
    page = await alert_rules.list_notifications(db=migrated_db, tenant=tenant, status="dead",
                                                rule_id=UUID(rule["id"]), limit=10, cursor=None,
                                                if_none_match=None)
    (item,) = page.items or []
    hook, fallback = item["deliveries"]
    # at once, not after ALERT_MAX_ATTEMPTS: the fallback (refused too) is the dead letter
    assert hook["status"] == "failed" and hook["attempts"] == 1
    assert hook["last_error"].startswith("refused")
    assert fallback["fallback"] and fallback["status"] == "dead" and fallback["attempts"] == 1
    assert jobs(migrated_db, "alerts.deliver") == ["succeeded", "succeeded"]


async def test_a_delivery_whose_job_gives_up_is_dead_lettered_not_left_sending(
        migrated_db, tmp_path):
    tenant = "gives-up"
    settings = Settings(data_dir=tmp_path, encryption_key=KEY)
    admin = Principal(tenant=tenant, role="admin", key_id=uuid.uuid4())
    rule = await alert_rules.create_rule(db=migrated_db, settings=settings, principal=admin, request={
        "name": "r", "channels": [{"type": "slack", "url": "https://hooks.example.com/x"}]})
    await store(migrated_db, tenant, [submission("a", "block")])
    assert await delivery.announce(db=migrated_db) == 1
    with psycopg.connect(migrated_db.conninfo) as conn:  # an attempt began, then its worker died
        conn.execute("SELECT set_config('app.tenant', %s, false)", (tenant,))
        (delivery_id,) = conn.execute("UPDATE alert_deliveries SET status = 'sending'"
                                      " WHERE tenant_id = %s RETURNING id", (tenant,)).fetchone()
    await delivery.give_up(db=migrated_db, tenant=tenant, delivery_id=delivery_id,
                           reason="OperationalError after 11 attempts")
    page = await alert_rules.list_notifications(db=migrated_db, tenant=tenant, status="dead",
                                                rule_id=UUID(rule["id"]), limit=10, cursor=None,
                                                if_none_match=None)
    (item,) = page.items or []
    assert item["last_error"] == "OperationalError after 11 attempts"


async def test_an_unreachable_database_pages_directly_once_per_window(receiver, tmp_path):
    settings = system_settings(receiver, tmp_path)
    http = delivery.client(settings)
    watch = system_alerts.DatabaseWatch(
        db=Database(f"postgresql://app@127.0.0.1:{free_port()}/gone"), settings=settings,
        http=http)
    try:
        await watch.check()
        assert posted(receiver, "/pd") == []  # one failed ping is not yet an outage
        await watch.check()
        await watch.check()  # the same window: not sent again
    finally:
        await http.aclose()
    (page,) = posted(receiver, "/pd")
    assert page["payload"]["summary"] == "The database is unreachable"
    assert page["payload"]["severity"] == "critical"
    assert len(posted(receiver, "/slack")) == 1
