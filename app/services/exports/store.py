"""Where export files live: the ExportStore interface and its local-disk implementation.

A file is written once, as a draft that becomes visible under its name only when complete
(so a worker killed mid-job leaves nothing that looks done), read by signed link, and
removed when it expires. The local disk (EXPORTS_PATH) is the one implementation today;
an object store implements the same three calls.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.config import Settings


@dataclass(frozen=True, slots=True)
class Written:
    """The stored file's sha256 and size: of the gzip bytes a download returns."""

    sha256: str
    size: int


class ExportDraft(Protocol):
    def write(self, data: bytes) -> None:
        """Append uncompressed bytes; the store compresses them."""

    def commit(self) -> Written:
        """Make the file durable and visible under its name, whole or not at all."""

    def discard(self) -> None:
        """Drop what was written; never raises (the next attempt removes leftovers)."""


class ExportStore(Protocol):
    def begin(self, tenant: str, name: str) -> ExportDraft:
        """A new draft of `name`, after removing leftovers of an attempt that died."""

    def locate(self, tenant: str, name: str) -> Path | None:
        """The complete file to serve, or None when it is gone."""

    def remove(self, tenant: str, name: str) -> None:
        """Delete the file if it is there."""


def configured(settings: Settings) -> ExportStore:
    return LocalDiskStore(settings.exports_path)


class HashingWriter(io.RawIOBase):
    """Counts and hashes the exact bytes that reach the file (the gzip stream)."""

    def __init__(self, target: Any) -> None:
        self.target, self.sha256, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return int(self.target.write(chunk))


class LocalDiskDraft:
    """A hidden `.<name>.<pid>.part` beside the final name: gzip with mtime 0 and no file
    name (the same rows always give the same bytes), hashed as written, fsynced, renamed."""

    def __init__(self, folder: Path, name: str) -> None:
        self._final = folder / name
        self._path = folder / f".{name}.{os.getpid()}.part"
        self._raw = open(self._path, "wb")
        self._hashing = HashingWriter(self._raw)
        self._gzip = gzip.GzipFile(fileobj=self._hashing, mode="wb", mtime=0, filename="",
                                   compresslevel=6)

    def write(self, data: bytes) -> None:
        self._gzip.write(data)

    def commit(self) -> Written:
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._path, self._final)  # the complete file, or none at all
        return Written(self._hashing.sha256.hexdigest(), self._hashing.size)

    def discard(self) -> None:
        for close in (self._gzip.close, self._raw.close):
            try:
                close()
            except (OSError, ValueError):  # the storage itself is failing
                pass
        try:
            self._path.unlink(missing_ok=True)
        except OSError:  # the next attempt removes leftovers
            pass


class LocalDiskStore:
    """EXPORTS_PATH/<tenant>/<name>."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def begin(self, tenant: str, name: str) -> LocalDiskDraft:
        folder = self._root / tenant
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(f".{name}.*.part"):  # from an attempt whose worker died
            leftover.unlink(missing_ok=True)
        return LocalDiskDraft(folder, name)

    def locate(self, tenant: str, name: str) -> Path | None:
        path = self._root / tenant / name
        return path if path.exists() else None

    def remove(self, tenant: str, name: str) -> None:
        (self._root / tenant / name).unlink(missing_ok=True)
