"""The published contract: /openapi.json and /openapi.yaml serve generated/openapi.json,
the bundled document as written (components and $refs kept), not connexion's copy — which
is fully dereferenced (4x the bytes, no components) and has `servers: [{url: ""}]`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

BUNDLED = Path(__file__).resolve().parent.parent / "generated" / "openapi.json"
PATHS = ("/openapi.json", "/openapi.yaml")


class ContractFiles:
    """GET/HEAD of the two documents, with an ETag (If-None-Match -> 304)."""

    def __init__(self, source: Path = BUNDLED) -> None:
        raw = source.read_bytes()
        document = json.loads(raw)
        as_yaml = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
        etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        self.files = {
            "/openapi.json": (raw, b"application/json", etag.encode()),
            "/openapi.yaml": (as_yaml.encode(), b"application/yaml",
                              etag[:-1].encode() + b'-yaml"'),
        }

    @staticmethod
    def handles(scope: dict[str, Any]) -> bool:
        return scope.get("path") in PATHS and scope.get("method") in ("GET", "HEAD")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, media_type, etag = self.files[scope["path"]]
        inm = dict(scope.get("headers", ())).get(b"if-none-match", b"")
        headers = [(b"etag", etag), (b"cache-control", b"no-cache")]
        if etag in [t.strip().removeprefix(b"W/") for t in inm.split(b",")]:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})
