"""/console: the console's static files (app/console/), served beside the contract.

The files are read once at start-up into memory with a strong ETag each; a matching
If-None-Match answers 304. Only the files that exist in app/console/ and its vendor/
folder (the pinned chart library and its licence) are served (no path is ever joined
from the request). A strict Content-Security-Policy allows the page's own
scripts and styles only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
PREFIX = "/console"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
         ".txt": "text/plain; charset=utf-8"}
SUBFOLDERS = ("vendor",)
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
     b" connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def _load(folder: Path) -> dict[str, tuple[bytes, str, str]]:
    files: dict[str, tuple[bytes, str, str]] = {}
    paths = sorted(folder.iterdir()) if folder.is_dir() else []
    for sub in SUBFOLDERS:
        if (folder / sub).is_dir():
            paths += sorted((folder / sub).iterdir())
    for path in paths:
        if path.is_file() and path.suffix in TYPES:
            data = path.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            files[path.relative_to(folder).as_posix()] = (data, TYPES[path.suffix], etag)
    return files


class ConsoleFiles:
    def __init__(self, folder: Path = CONSOLE_DIR) -> None:
        self.files = _load(folder)

    @staticmethod
    def handles(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if path == PREFIX:
            await _send(send, 308, [(b"location", b"/console/")], b"")
            return
        name = path.removeprefix(PREFIX + "/") or "index.html"
        found = self.files.get(name)
        if found is None or scope.get("method") not in ("GET", "HEAD"):
            status = 404 if found is None else 405
            await _send(send, status, [(b"content-type", b"text/plain; charset=utf-8")],
                        b"not found" if status == 404 else b"method not allowed")
            return
        data, content_type, etag = found
        headers = [(b"etag", etag.encode()), (b"cache-control", b"no-cache"), *SECURITY_HEADERS]
        if_none_match = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                              if k == b"if-none-match"), "")
        if etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
            await _send(send, 304, headers, b"")
            return
        body = b"" if scope.get("method") == "HEAD" else data
        await _send(send, 200, [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(data)).encode()), *headers], body)


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
