"""Importers: the result files producers' tools already write -> report submissions.

Each module is a pure function `to_reports(raw: bytes, options) -> [submission, ...]`
in the shape of the contract's ReportSubmission (one per report, at most 500), used by
both `POST /ingest/{format}` and `qc-collector import`. A file that cannot be read is an
`InvalidFile` (422) whose `errors` point into that file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.importers import dbt, gx, junit, sarif
from app.importers._common import InvalidFile, Options

FORMATS: dict[str, Callable[[bytes, Options], list[dict[str, Any]]]] = {
    "junit": junit.to_reports,
    "sarif": sarif.to_reports,
    "dbt": dbt.to_reports,
    "gx": gx.to_reports,
}


def to_reports(fmt: str, raw: bytes, options: Options) -> list[dict[str, Any]]:
    return FORMATS[fmt](raw, options)


__all__ = ["FORMATS", "InvalidFile", "Options", "to_reports"]
