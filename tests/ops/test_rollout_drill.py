"""Zero-drop rollout drill: the API replaced under load the way a Kubernetes rollout
does it, with real gunicorn servers and `wrk`:

  old pod serving -> new pod ready -> the old pod's endpoint is removed (kube-proxy
  sends new connections to the new pod only) -> the preStop sleep -> SIGTERM to the old
  gunicorn, which drains what it still holds within graceful_timeout.

A small TCP forwarder stands in for the Service (kube-proxy): each new connection goes to
the current endpoint. Not one request may fail: no socket error, no non-2xx answer.

Measured here, and why the endpoint switch matters: SIGTERM to a uvicorn worker that
still receives new connections drops the ones it accepted but had not read yet (2 read
errors in ~180 requests), so the preStop sleep (chart: api.preStopSleepSeconds) must
outlast endpoint propagation; the chart refuses a grace period that cannot hold it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import threading
import time
from urllib.parse import urlparse

import pytest

from tools.liveserver import free_port, key_for, start_server

# One connection per request, so the endpoint switch applies to every later request (a
# kept-alive connection stays on its pod: clients retry those, wrk does not).
LUA = 'wrk.headers["X-Api-Key"] = "{key}"\nwrk.headers["Connection"] = "close"\n'


class Service:
    """kube-proxy in miniature: forwards each new TCP connection to the current endpoint."""

    def __init__(self, endpoint: int) -> None:
        self.endpoint = endpoint
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        # Every transport either side ever opened, kept until the loop closes: a connection
        # accepted in the loop's last turn has a writer but its _forward task never ran,
        # and one the garbage collector finds later fails whichever test runs then.
        self.transports: set[asyncio.BaseTransport] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _accepted(self) -> asyncio.StreamReaderProtocol:
        service = self

        class Tracked(asyncio.StreamReaderProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                service.transports.add(transport)
                super().connection_made(transport)

        return Tracked(asyncio.StreamReader(), self._forward)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            self.loop.create_server(self._accepted, "127.0.0.1", self.port, backlog=256))
        self.ready.set()
        self.loop.run_forever()
        # Leave nothing for the garbage collector: close the listener, stop every
        # forwarding task, abort every connection, let their sockets close, then the loop.
        server.close()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        for transport in self.transports:
            transport.abort()  # type: ignore[attr-defined]
        self.loop.run_until_complete(server.wait_closed())
        self.loop.run_until_complete(asyncio.sleep(0.05))  # connection_lost closes each socket
        self.loop.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.endpoint)
        self.transports.add(up_writer.transport)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the forwarder did not shut down"


def test_a_rollout_under_load_drops_no_request(database, tmp_path):
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.fail("wrk is missing: apt-get install wrk (.ci/run does)")
    old = start_server(database, workers=2, run_dir=tmp_path / "old")
    new = None
    service = Service(urlparse(old.url).port or 0)
    try:
        new = start_server(database, workers=2, run_dir=tmp_path / "new")  # the surge pod, ready
        script = tmp_path / "auth.lua"
        script.write_text(LUA.format(key=key_for("acme", "viewer")))
        load = subprocess.Popen([wrk, "-t2", "-c8", "-d7s", "--timeout", "5s", "-s", str(script),
                                 f"http://127.0.0.1:{service.port}/reports?limit=5"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)
        service.endpoint = urlparse(new.url).port or 0  # the old pod's endpoint is removed
        time.sleep(1)  # preStop sleep
        old.process.send_signal(signal.SIGTERM)
        output, _ = load.communicate(timeout=30)
        assert old.process.wait(timeout=30) == 0, old.log()[-2000:]
    finally:
        service.stop()
        old.stop()
        if new is not None:
            new.stop()
    assert load.returncode == 0, output
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    assert requests > 50, output
    assert "Socket errors" not in output, output
    assert "Non-2xx or 3xx responses" not in output, output
