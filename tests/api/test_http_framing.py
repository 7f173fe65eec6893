"""What a client reads off the wire from the real server, through app/server.py's guarded
protocol (head limits re-armed per request): a 100 Continue that comes before the body
is sent (curl asks for one with every body over 1 KiB), a HEAD answered at once without
a body, pipelined requests answered whole and in order. Raw sockets, so nothing stands
between the test and the bytes."""

from __future__ import annotations

import json
import socket
import time

import orjson

from tests.factories import headers, report
from tools.liveserver import LiveServer


def connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def read_head(conn: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes]:
    """A response head (status line and headers) and the bytes read after it."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed mid-head: {data[:200]!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_answer(conn: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One answer (status line and headers, body by content-length) and what follows it."""
    head, rest = read_head(conn, buffered)
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields.get(b"content-length", b"0"))
    if head.split(b" ", 2)[1] in (b"204", b"304"):  # no body, whatever the fields say
        length = 0
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return head, rest[:length], rest[length:]


def request(method: str, path: str, fields: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in fields.items())]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    # curl sends Expect: 100-continue with every body over 1 KiB and waits up to 1 s for it
    body = orjson.dumps(report())
    fields = {**headers(role="operator"), "Content-Type": "application/json",
              "Expect": "100-continue"}
    with connect(server) as conn:
        started = time.monotonic()
        conn.sendall(request("POST", "/ingest/qc", fields, body)[:-len(body)])
        interim = conn.recv(65536)
        assert interim.startswith(CONTINUE), interim[:80]
        assert time.monotonic() - started < 0.5
        conn.sendall(body)
        head, answer, _ = read_answer(conn, interim.removeprefix(CONTINUE))
    assert head.startswith(b"HTTP/1.1 201"), head[:200]
    assert json.loads(answer)["tenant"] == "acme"


def test_a_head_request_gets_the_head_at_once_and_no_body(server):
    with connect(server) as conn:
        started = time.monotonic()
        conn.sendall(request("HEAD", "/health", {}))
        head, after = read_head(conn)
        assert time.monotonic() - started < 1.0
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        assert after == b""  # nothing after the head
        # the connection is still usable: the next answer is whole
        conn.sendall(request("GET", "/health", {}))
        next_head, body, _ = read_answer(conn)
    assert next_head.startswith(b"HTTP/1.1 200") and json.loads(body)


def test_pipelined_requests_are_answered_whole_and_in_order(server):
    viewer = headers(role="viewer")
    sent = [("/reports?limit=2", viewer), ("/health", {}), ("/reports?limit=1", viewer)]
    with connect(server) as conn:
        conn.sendall(b"".join(request("GET", path, fields) for path, fields in sent))
        rest = b""
        answers = []
        for _ in sent:
            head, body, rest = read_answer(conn, rest)
            answers.append((head.split(b"\r\n", 1)[0], json.loads(body)))
    assert [status for status, _ in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert len(answers[0][1]["items"]) <= 2 and len(answers[2][1]["items"]) <= 1
    assert answers[1][1]["status"] == "ok"
