"""Report listing rules without a database: cursors, label filters."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from app.errors import BadRequest
from app.services import reports


def test_cursor_round_trip_and_rejections():
    moment, report_id = datetime(2026, 1, 1, tzinfo=UTC), uuid4()
    cursor = reports.encode_cursor("-received_at", moment, report_id)
    assert reports.decode_cursor(cursor, "-received_at") == (moment, report_id)
    with pytest.raises(BadRequest, match="another sort"):
        reports.decode_cursor(cursor, "observed_at")
    for junk in ("0", "eyJ4IjoxfQ", "!!!!"):
        with pytest.raises(BadRequest):
            reports.decode_cursor(junk, "-received_at")


def test_label_filters_with_conflicting_values_match_nothing():
    filters = reports.make_filters(label=["env:prod", "env:dev"])
    assert filters.sql_params()["subject"] == []
    assert reports.make_filters(label=["a:1", "b:"]).sql_params()["labels"] == '{"a":"1","b":""}'
