"""The ops accumulator and the histogram percentiles (no database)."""

from __future__ import annotations

from app.services.ops.metrics import LATENCY_BUCKETS, OpsAccumulator, _rows, percentile


def test_percentile_interpolates_inside_the_bucket() -> None:
    histogram = [0] * (len(LATENCY_BUCKETS) + 1)
    assert percentile(histogram, 0.5) is None
    histogram[3] = 10  # (5 ms, 10 ms]
    assert percentile(histogram, 0.5) == 7.5
    assert percentile(histogram, 0.95) == 9.75
    histogram[-1] = 1000  # beyond the last bound: reported as the last bound
    assert percentile(histogram, 0.95) == LATENCY_BUCKETS[-1] * 1000


def test_accumulator_counts_per_tenant_minute_and_class_then_drains() -> None:
    acc = OpsAccumulator()
    acc.add("acme", True, 201, 0.004, now=120.5)
    acc.add("acme", True, 500, 0.2, now=130.0)
    acc.add("acme", False, 403, 0.001, now=130.0)
    acc.add("globex", False, 200, 9.0, now=130.0)
    requests, rejections, _, _ = _rows(acc)
    by_key = {(r["tenant"], r["ingest"]): r for r in requests}
    ingest = by_key[("acme", True)]
    assert (ingest["requests"], ingest["client_errors"], ingest["server_errors"]) == (2, 0, 1)
    assert sum(ingest["latency"]) == 2 and ingest["minute"] == "1970-01-01T00:02:00.000000Z"
    assert by_key[("globex", False)]["latency"][-1] == 1
    assert rejections == [{"tenant": "acme", "minute": "1970-01-01T00:02:00.000000Z",
                           "reason": "403", "n": 1}]
    assert acc.drain() == ({}, {})


def test_a_failed_flush_is_put_back() -> None:
    acc = OpsAccumulator()
    acc.add("acme", False, 422, 0.01, now=0)
    requests, rejections = acc.drain()
    acc.add("acme", False, 200, 0.01, now=0)
    acc.restore(requests, rejections)
    assert acc.requests[("acme", 0, False)][:3] == [2, 1, 0]
    assert acc.rejections == {("acme", 0, "422"): 1}
