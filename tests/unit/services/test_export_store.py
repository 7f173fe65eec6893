"""The ExportStore contract on its local-disk implementation, and the CSV rendering by
column name: what the export job relies on, without a database."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from app.services.exports.job import CSV_COLUMNS, _csv_lines
from app.services.exports.store import LocalDiskStore
from app.storage.exports import EXPORTABLE


def test_a_committed_draft_is_the_whole_file_and_its_hash_is_of_the_bytes_served(tmp_path: Path):
    store = LocalDiskStore(tmp_path)
    draft = store.begin("acme", "e1.csv.gz")
    assert store.locate("acme", "e1.csv.gz") is None  # nothing visible while written
    draft.write(b"a,b\n")
    draft.write(b"1,2\n")
    written = draft.commit()
    path = store.locate("acme", "e1.csv.gz")
    assert path is not None and gzip.decompress(path.read_bytes()) == b"a,b\n1,2\n"
    assert written.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert written.size == path.stat().st_size
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["e1.csv.gz"]  # no draft left


def test_the_same_rows_give_the_same_bytes(tmp_path: Path):
    digests = set()
    for name in ("one.gz", "two.gz"):
        draft = LocalDiskStore(tmp_path).begin("acme", name)
        draft.write(b"same rows\n")
        digests.add(draft.commit().sha256)
    assert len(digests) == 1  # gzip with mtime 0 and no file name


def test_a_discarded_draft_leaves_nothing_and_a_dead_attempts_leftover_is_removed(tmp_path: Path):
    store = LocalDiskStore(tmp_path)
    (tmp_path / "acme").mkdir()
    leftover = tmp_path / "acme" / ".e2.csv.gz.99999.part"  # a worker killed mid-write
    leftover.write_bytes(b"half")
    draft = store.begin("acme", "e2.csv.gz")
    assert not leftover.exists()
    draft.write(b"rows\n")
    draft.discard()
    draft.discard()  # twice is harmless, as after a failed commit
    assert list((tmp_path / "acme").iterdir()) == []
    assert store.locate("acme", "e2.csv.gz") is None
    store.remove("acme", "e2.csv.gz")  # removing what is gone is not an error


def test_csv_rows_follow_the_one_column_list():
    assert all(column in EXPORTABLE for _, column in CSV_COLUMNS)
    row = {"id": UUID(int=1), "received_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
           "observed_at_raw": "2026-01-02T03:04:05+01:00", "source": "=cmd", "subject": "s",
           "run_id": None, "status": "fail", "severity": "block", "count_pass": 1,
           "count_warn": 0, "count_fail": 2, "labels": '{"env": "prod"}',
           "content_sha256": "ab", "signed": True}
    text = _csv_lines([tuple(row[column] for _, column in CSV_COLUMNS)]).decode()
    (cells,) = csv.reader(io.StringIO(text))
    assert dict(zip((header for header, _ in CSV_COLUMNS), cells, strict=True)) == {
        "id": str(UUID(int=1)), "received_at": "2026-01-02T03:04:05.000000Z",
        "observed_at": "2026-01-02T03:04:05+01:00", "source": "'=cmd", "subject": "s",
        "run_id": "", "status": "fail", "severity": "block", "pass": "1", "warn": "0",
        "fail": "2", "labels": '{"env": "prod"}', "content_sha256": "ab", "signed": "true"}


def test_a_row_of_the_wrong_width_is_refused_not_shifted():
    with pytest.raises(ValueError):
        _csv_lines([(UUID(int=1), datetime(2026, 1, 2, tzinfo=UTC), "x")])
