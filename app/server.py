"""The gunicorn worker: uvicorn's, with limits on the request head that uvicorn lacks and
keep-alive connections spread evenly over the workers.

Measured (gunicorn 27, uvicorn 0.54, httptools): gunicorn's limit_request_line,
limit_request_fields and limit_request_field_size do not reach uvicorn workers, and
uvicorn's httptools protocol has no head size limit and no head read timeout — a 64 MiB
header was read to the end and a head trickled a few bytes at a time stayed open for
minutes. This protocol answers 431 once a request head passes MAX_HEADER_BYTES and 408
when a head is not complete within HEADER_TIMEOUT seconds, and closes the connection
both times. Body limits and the body read deadline are ASGI layers (app/guard.py).

Connections: gunicorn's workers race to accept() on one shared socket, and uvloop accepts
every pending connection in one go, so the first worker awake takes a whole burst: 32
keep-alive connections opened at once landed 30/2 and 31/1 on two workers, wrk's 24/8,
9/23, 21/11, 29/3 (tests/integration/test_connection_balance.py, ad-hoc runs). A
crowded worker queues requests while its sibling idles. `AcceptBalance` counts each
worker's open connections in memory shared by the workers; a worker that accepts while
more than one ahead of its least busy live sibling pauses, BALANCE_PAUSE_SECONDS at a
time and at most BALANCE_WAIT_SECONDS, so the sibling, woken by the same readiness,
accepts the next one (what libuv's UV_TCP_SINGLE_ACCEPT did, here only when ahead). The
same bursts land 16/16 or 17/15. BALANCE_CONNECTIONS=false turns it off.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import time
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from app import config

_settings = config.load()
BALANCE_SLOTS = 256  # workers alive at once, old and new during a reload included
BALANCE_PAUSE_SECONDS = 0.0001  # a sibling woken by the same readiness accepts meanwhile
BALANCE_WAIT_SECONDS = 0.002  # at most, per accepted connection (a busy sibling may not come)


class AcceptBalance:
    """Open connections per worker, in an anonymous shared mapping made at import in the
    gunicorn master and inherited by every worker it forks. A slot is a pair of int64:
    the worker's pid (0 free, -1 claimed by the master before the fork) and its count;
    the last int64 is how many slots were ever claimed, so a worker reads only those
    (all 256 took 14 µs per accepted connection, 2 take ~1). Each count is written only
    by its own single-threaded worker; aligned 8-byte writes are atomic, so readers see
    a count, old or new."""

    def __init__(self, slots: int = BALANCE_SLOTS) -> None:
        self._cells = memoryview(mmap.mmap(-1, (slots * 2 + 1) * 8)).cast("q")
        self._slots = slots
        self._slot: int | None = None
        self._pid = 0

    def claim(self) -> int:
        """In the master, before a fork: a slot whose worker is gone (or never was)."""
        for slot in range(self._slots):
            pid = self._cells[2 * slot]
            if pid == 0 or (pid > 0 and not _alive(pid)):
                self._cells[2 * slot], self._cells[2 * slot + 1] = -1, 0
                self._cells[-1] = max(self._cells[-1], slot + 1)
                return slot
        raise RuntimeError(f"more than {self._slots} workers alive")

    def bind(self, slot: int) -> None:
        """In the worker, after the fork."""
        self._slot, self._pid = slot, os.getpid()
        self._cells[2 * slot + 1] = 0
        self._cells[2 * slot] = self._pid

    def accepted(self) -> None:
        if self._slot is None:
            return
        own = self._cells[2 * self._slot + 1] + 1
        self._cells[2 * self._slot + 1] = own
        deadline = None
        while own > self.fewest_elsewhere(default=own) + 1:
            now = time.monotonic()
            deadline = deadline or now + BALANCE_WAIT_SECONDS
            if now >= deadline:
                break
            time.sleep(BALANCE_PAUSE_SECONDS)  # blocks the loop: a sibling accepts

    def closed(self) -> None:
        if self._slot is not None:
            self._cells[2 * self._slot + 1] -= 1

    def fewest_elsewhere(self, default: int) -> int:
        """The least busy live sibling's count (`default` when there is none)."""
        fewest = None
        for slot in range(self._cells[-1]):
            pid = self._cells[2 * slot]
            if pid > 0 and pid != self._pid:
                count = self._cells[2 * slot + 1]
                if (fewest is None or count < fewest) and _alive(pid):
                    fewest = count
        return default if fewest is None else fewest

    def counts(self) -> dict[int, int]:
        """Open connections by worker pid (tests, diagnostics)."""
        return {self._cells[2 * s]: self._cells[2 * s + 1] for s in range(self._cells[-1])
                if self._cells[2 * s] > 0}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user took the pid over: not ours
        return False
    return True


BALANCE = AcceptBalance()


def _problem(status: int, reason: bytes, detail: str) -> bytes:
    body = orjson.dumps({"type": "about:blank", "title": reason.decode(), "status": status,
                         "detail": detail})
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, reason),
        b"content-type: application/problem+json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-content-type-options: nosniff\r\n",
        b"connection: close\r\n\r\n", body])


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = _settings.max_header_bytes
    head_timeout = _settings.header_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # raw bytes read while the head is incomplete (memory bound)
        self._head_size = 0  # the parsed head's size (a whole head may come in one read)
        self._in_head = True
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        BALANCE.accepted()

    def connection_lost(self, exc: Exception | None) -> None:
        BALANCE.closed()
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, message: bytes) -> None:
        self._disarm()
        self._in_head = False
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(message)
            self.transport.close()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._refuse(_problem(408, b"Request Timeout",
                                  f"request head not complete within {self.head_timeout:g} s"))

    def _too_large(self) -> None:
        self._refuse(_problem(431, b"Request Header Fields Too Large",
                              f"request line and headers exceed {self.max_head_bytes} bytes"))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: one read may hold the whole head and the start of a body.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._too_large()

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head_size = 0
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._disarm()
        if self._head_size > self.max_head_bytes:
            self._too_large()  # the request is not run; the rest of the read is dropped
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()


class GuardedWorker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS,
                     "http": "app.server:GuardedHttpToolsProtocol"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # in the master, before the fork
        self.balance_slot = BALANCE.claim() if _settings.balance_connections else None

    def init_process(self) -> None:
        if self.balance_slot is not None:  # in the worker, after the fork
            BALANCE.bind(self.balance_slot)
        super().init_process()
