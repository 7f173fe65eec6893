"""Finding: CR/LF in a report's subject reached the alert email's Subject header, the
email library refused it and the first email of the window failed. Over a real API
server, a real dispatcher (qc-collector worker) and a real SMTP receiver."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.api.test_alerts import Mailbox
from tests.factories import alert_rule, headers, report
from tools.liveserver import LiveDatabase, free_port, start_server, start_worker


@pytest.fixture(scope="module")
def mail_stack(database: LiveDatabase,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Mailbox]]:
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {"ALERT_POLL_SECONDS": "0.2", "ALERTS_ALLOW_PRIVATE_TARGETS": "true",
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false",
           "SMTP_FROM": "qcc@test.example", "ALERT_SEND_TIMEOUT": "2",
           "ENCRYPTION_KEY": base64.b64encode(b"m" * 32).decode()}
    run_dir = tmp_path_factory.mktemp("mail")
    server = start_server(database, workers=1, env=env, run_dir=run_dir)
    worker = start_worker(database, run_dir=run_dir, env=env, name="mail-dispatcher")
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield client, mailbox
    finally:
        client.close()
        worker.stop()
        server.stop()
        smtp.stop()


def test_line_breaks_in_a_subject_do_not_break_the_alert_email(mail_stack: Any) -> None:
    http, mailbox = mail_stack
    source = f"crlf-{uuid.uuid4().hex[:8]}"
    to = f"{source}@test.example"
    r = http.post("/alert-rules", headers=headers(), json=alert_rule(
        source, source=source, channels=[{"type": "email", "to": [to]}]))
    assert r.status_code == 201, r.text
    subject = "dataset:orders\r\nBcc: victim@evil.example\r\nX-Injected: 1"
    r = http.post("/ingest/qc", json=report(source=source, subject=subject),
                  headers=headers(role="operator"))
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 30
    while not mailbox.to(to) and time.monotonic() < deadline:
        time.sleep(0.1)
    messages = mailbox.to(to)
    assert messages, "the first email of the window was not delivered"
    mail = messages[0]
    subject = re.sub(r"\r?\n[ \t]", " ", mail["Subject"])  # the transport's own line folding
    assert "\r" not in subject and "\n" not in subject, subject
    assert "dataset:orders" in subject and "Bcc:" in subject  # kept, as text
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert not any("victim@evil.example" in rcpt for rcpt, _ in mailbox.messages)
