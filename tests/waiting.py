"""Waiting for what other processes do: a condition to hold, a revoked key to be refused
by every worker of a server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.05) -> Any:
    """The first truthy value of `predicate`, polled every `interval` seconds; an
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def refusal_streak(http: httpx.Client, secret: str, *, since: float, limit: float = 8) -> int:
    """GET /reports with the key until six answers in a row are 401 (the requests spread
    over the workers, so all of them refuse it) or `limit` seconds after `since` (a
    time.monotonic() reading) have passed; returns the streak reached."""
    streak = 0
    while streak < 6 and time.monotonic() - since < limit:
        status = http.get("/reports", headers={"X-Api-Key": secret}).status_code
        streak = streak + 1 if status == 401 else 0
        time.sleep(0.05)
    return streak
