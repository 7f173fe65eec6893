"""app/server.py's AcceptBalance: the slots the gunicorn master hands out, the counts a
worker keeps, and the pause of a worker that accepts while ahead of a live sibling. In
process: the sibling is this test's parent process (alive) or a finished child (gone);
the pauses are counted, not timed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app import server
from app.server import BALANCE_WAIT_SECONDS, AcceptBalance


def finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []
    monkeypatch.setattr(server.time, "sleep", taken.append)
    return taken


def test_the_master_hands_out_free_slots_and_takes_back_those_of_gone_workers() -> None:
    balance = AcceptBalance(slots=3)
    first, second = balance.claim(), balance.claim()
    assert (first, second) == (0, 1)
    balance._cells[2 * first] = os.getppid()  # a live worker keeps its slot
    balance._cells[2 * second] = finished_pid()  # a gone one's slot is free again
    assert balance.claim() == second
    assert balance.claim() == 2


def test_a_worker_counts_what_it_accepts_and_closes(pauses: list[float]) -> None:
    balance = AcceptBalance(slots=2)
    balance.bind(balance.claim())
    for _ in range(3):
        balance.accepted()
    balance.closed()
    assert balance.counts() == {os.getpid(): 2}
    assert pauses == []  # no sibling: nobody to wait for


def test_a_worker_ahead_of_a_live_sibling_pauses_and_one_level_with_it_does_not(
        pauses: list[float]) -> None:
    balance = AcceptBalance(slots=2)
    sibling = balance.claim()
    balance._cells[2 * sibling], balance._cells[2 * sibling + 1] = os.getppid(), 1
    balance.bind(balance.claim())

    balance.accepted()
    balance.accepted()  # 2 against 1: within one
    assert pauses == []
    started = time.monotonic()
    balance.accepted()  # 3 against 1: the sibling is given the chance to accept
    waited = time.monotonic() - started

    assert pauses  # it paused, in short steps, until the deadline (the sibling never came)
    assert waited >= BALANCE_WAIT_SECONDS
    assert balance.counts()[os.getpid()] == 3  # the connection is served all the same


def test_a_worker_stops_pausing_once_a_sibling_has_caught_up(pauses: list[float],
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    balance = AcceptBalance(slots=2)
    sibling = balance.claim()
    balance._cells[2 * sibling], balance._cells[2 * sibling + 1] = os.getppid(), 0
    balance.bind(balance.claim())
    balance.accepted()

    def sibling_accepts(_: float) -> None:
        pauses.append(_)
        balance._cells[2 * sibling + 1] += 1
    monkeypatch.setattr(server.time, "sleep", sibling_accepts)
    balance.accepted()  # 2 against 0: waits until the sibling holds one
    assert len(pauses) == 1


def test_a_gone_sibling_is_not_waited_for(pauses: list[float]) -> None:
    balance = AcceptBalance(slots=2)
    sibling = balance.claim()
    balance._cells[2 * sibling], balance._cells[2 * sibling + 1] = finished_pid(), 0
    balance.bind(balance.claim())
    for _ in range(5):
        balance.accepted()
    assert pauses == []
