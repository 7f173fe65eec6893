"""The rules of app/conditional.py's memory: what it may answer, and when it forgets."""

from __future__ import annotations

import pytest

from app import conditional
from app.conditional import Validators


@pytest.fixture
def memory() -> Validators:
    memory = Validators()
    memory.lost()  # as at the listener's LISTEN
    memory.alive()
    return memory


def learn(memory: Validators, tenant: str = "acme", since: int | None = None) -> None:
    memory.learn(tenant, "/reports", b"limit=5", b'"tag"', "reports.list_reports",
                 memory.sequence if since is None else since)


def test_a_lesson_holds_until_its_tenant_changes(memory):
    learn(memory)
    assert memory.known("acme", "/reports", b"limit=5").etag == b'"tag"'
    memory.changed("globex")
    assert memory.known("acme", "/reports", b"limit=5") is not None
    memory.changed("acme")
    assert memory.known("acme", "/reports", b"limit=5") is None


def test_a_change_during_the_full_answer_is_never_learned(memory):
    began = memory.sequence
    memory.changed("acme")  # committed while the answer was being computed
    learn(memory, since=began)
    assert memory.known("acme", "/reports", b"limit=5") is None


def test_nothing_is_learned_or_answered_without_a_live_listener(memory, monkeypatch):
    learn(memory)
    memory.lost()
    assert memory.known("acme", "/reports", b"limit=5") is None
    learn(memory)
    assert memory.known("acme", "/reports", b"limit=5") is None  # not alive yet
    memory.alive()
    now = [1000.0]
    monkeypatch.setattr(conditional.time, "monotonic", lambda: now[0])
    memory.alive()
    learn(memory)
    assert memory.known("acme", "/reports", b"limit=5") is not None
    now[0] += conditional.STALE_AFTER_SECONDS  # heartbeats stopped
    assert memory.known("acme", "/reports", b"limit=5") is None


def test_a_lesson_is_used_for_at_most_max_age(memory, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(conditional.time, "monotonic", lambda: now[0])
    memory.alive()
    learn(memory)
    now[0] += conditional.MAX_AGE_SECONDS - 0.1
    memory.alive()
    assert memory.known("acme", "/reports", b"limit=5") is not None
    now[0] += 0.2
    memory.alive()
    assert memory.known("acme", "/reports", b"limit=5") is None


def test_tenants_and_urls_are_apart(memory):
    learn(memory)
    assert memory.known("globex", "/reports", b"limit=5") is None
    assert memory.known("acme", "/reports", b"limit=6") is None
    assert memory.known("acme", "/reports/x", b"limit=5") is None
