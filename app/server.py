"""The gunicorn worker: uvicorn's, with limits on the request head that uvicorn lacks.

Measured (gunicorn 27, uvicorn 0.54, httptools): gunicorn's limit_request_line,
limit_request_fields and limit_request_field_size do not reach uvicorn workers, and
uvicorn's httptools protocol has no head size limit and no head read timeout — a 64 MiB
header was read to the end and a head trickled a few bytes at a time stayed open for
minutes. This protocol answers 431 once a request head passes MAX_HEADER_BYTES and 408
when a head is not complete within HEADER_TIMEOUT seconds, and closes the connection
both times. Body limits and the body read deadline are ASGI layers (app/guard.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from app import config

_settings = config.load()


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

    def connection_lost(self, exc: Exception | None) -> None:
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
