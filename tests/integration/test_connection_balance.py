"""Keep-alive connections spread over gunicorn's workers (app/server.py, AcceptBalance):
a burst of 32 connections, as a load balancer's pool or wrk opens them, and 16 opened one
after another, each left open after its first answer. Counted from outside, by the
connections each worker process holds on the server's port."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import psutil
import pytest

from tests.waiting import wait_until
from tools.liveserver import LiveDatabase, LiveServer, start_server

WORKERS = 2


@pytest.fixture(scope="module")
def server(database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = start_server(database, workers=WORKERS, run_dir=tmp_path_factory.mktemp("balance"),
                           env={"BALANCE_CONNECTIONS": os.environ.get("BALANCE_CONNECTIONS",
                                                                      "true")})
    # ready means one worker answers; a worker still starting cannot accept anything
    wait_until(lambda: started.log().count("Application startup complete") == WORKERS,
               timeout=30, what="every worker started")
    yield started
    started.stop()


def address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def ask(conn: socket.socket) -> None:
    conn.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(4096)
        assert chunk, "the server closed a kept-alive connection"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]


def held(server: LiveServer) -> list[int]:
    port = address(server)[1]
    return sorted(sum(1 for c in psutil.Process(pid).net_connections("tcp")
                      if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
                  for pid in server.worker_pids())


def held_while_open(server: LiveServer, count: int, *, at_once: bool) -> list[int]:
    """`count` connections, each served once and kept open (all opened first when
    `at_once`, else each served before the next opens); the per-worker counts meanwhile."""
    with contextlib.ExitStack() as stack:
        conns = []
        for _ in range(count):
            conns.append(stack.enter_context(socket.create_connection(address(server),
                                                                      timeout=10)))
            if not at_once:
                ask(conns[-1])
        if at_once:
            for conn in conns:
                ask(conn)
        return held(server)


def test_a_burst_of_connections_is_shared_out_evenly(server: LiveServer) -> None:
    counts = held_while_open(server, 32, at_once=True)
    assert sum(counts) == 32, counts
    # racing for accept() (BALANCE_CONNECTIONS=false) one worker took 30-31 of them
    assert counts[0] >= 12, counts


def test_connections_opened_one_after_another_are_shared_out_evenly(server: LiveServer) -> None:
    # One after another, the kernel wakes the workers in turn even when they race: racing
    # gave 6-10 of 16 to the less busy worker in six rounds (2026-12-03), and balanced
    # rounds 4-9 on a loaded machine. What this guards is that the balance never makes it
    # worse (a pause that keeps the sibling from accepting would give it ~0): three
    # rounds, the less busy worker holds at least 15 of the 48 (racing's 5/11 at worst).
    rounds = [held_while_open(server, 16, at_once=False) for _ in range(3)]
    assert all(sum(counts) == 16 for counts in rounds), rounds
    assert sum(counts[0] for counts in rounds) >= 15, rounds
