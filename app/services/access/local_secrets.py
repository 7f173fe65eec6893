"""Development secrets kept under the data dir, created once — safely, even when several
workers start at the same moment. Production passes real secrets in the environment."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("qc_collector.secrets")


def read_or_create(path: Path, make: Callable[[], bytes], *, what: str) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(make())
        try:
            os.link(draft, path)  # atomic: a complete file or none; the first process wins
            log.warning("%s is unset: generated a development one in %s", what, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes()
