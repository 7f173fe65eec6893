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


def kept(memory: Validators, query: bytes, size: int, tag: bytes = b'"tag"') -> None:
    body = b"x" * (size - conditional.ANSWER_OVERHEAD)
    memory.learn("acme", "/reports", query, tag, "reports.list_reports", memory.sequence,
                 conditional.Answer(((b"etag", tag),), body))


def answer_of(memory: Validators, query: bytes) -> conditional.Answer | None:
    found = memory.known("acme", "/reports", query)
    return None if found is None else found.answer


def test_answers_are_kept_within_their_room_the_oldest_leaving_first():
    memory = Validators(answer_bytes=16 * 4096)
    memory.lost()
    memory.alive()
    for n in range(16):
        kept(memory, b"page=%d" % n, 4096)
    assert all(answer_of(memory, b"page=%d" % n) is not None for n in range(16))
    kept(memory, b"page=16", 4096)  # no room left: the first learned goes
    assert memory.known("acme", "/reports", b"page=0") is None
    assert all(answer_of(memory, b"page=%d" % n) is not None for n in range(1, 17))
    kept(memory, b"page=1", 4096, tag=b'"new"')  # learned again: replaced, not counted twice
    kept(memory, b"page=17", 4096)
    assert answer_of(memory, b"page=1") is not None
    assert memory.known("acme", "/reports", b"page=2") is None


def test_an_answer_too_large_for_its_share_is_not_kept_but_its_etag_is():
    memory = Validators(answer_bytes=16 * 4096)
    memory.lost()
    memory.alive()
    kept(memory, b"big", 4097)
    found = memory.known("acme", "/reports", b"big")
    assert found is not None and found.etag == b'"tag"' and found.answer is None


def test_a_304_by_the_full_path_keeps_the_answer_of_the_same_etag():
    memory = Validators(answer_bytes=16 * 4096)
    memory.lost()
    memory.alive()
    kept(memory, b"limit=5", 1024)
    learn(memory)  # the same ETag, learned from a 304: the 200 kept still holds
    assert answer_of(memory, b"limit=5") is not None
    memory.learn("acme", "/reports", b"limit=5", b'"other"', "reports.list_reports",
                 memory.sequence)
    assert answer_of(memory, b"limit=5") is None


def test_no_room_keeps_no_answer(memory):
    kept(memory, b"limit=5", 1024)
    found = memory.known("acme", "/reports", b"limit=5")
    assert found is not None and found.answer is None
