"""POST /exports, GET /exports/{id}, GET /exports/{id}/download (signed URL, no key)."""

from __future__ import annotations

import base64
from typing import Any, cast
from uuid import UUID

from connexion.lifecycle import ConnexionResponse
from starlette.responses import FileResponse

from app import runtime
from app.handlers._http import body, header, json, next_link, not_modified, principal
from app.services.exports import rules, signed_urls, store, views
from generated.types import ExportRequest


async def create_export(token_info: dict[str, Any]) -> ConnexionResponse:
    rt = runtime.get()
    accepted = await rules.create(db=rt.db, settings=rt.settings,
                                  principal=principal(token_info),
                                  request=cast(ExportRequest, body()))
    return json({"id": str(accepted.export_id), "status": accepted.status}, 202,
                {"Location": f"/exports/{accepted.export_id}"})


async def list_exports(token_info: dict[str, Any], limit: int = 20,
                       cursor: str | None = None) -> ConnexionResponse:
    rt = runtime.get()
    page = await views.list_exports(db=rt.db, settings=rt.settings,
                                    tenant=principal(token_info).tenant, limit=limit,
                                    cursor=cursor, if_none_match=header("if-none-match"))
    if page.body is None:
        return not_modified(page.etag)
    headers = {"ETag": page.etag}
    if page.body["next_cursor"]:
        headers["Link"] = next_link(page.body["next_cursor"])
    return json(page.body, headers=headers)


async def get_export(token_info: dict[str, Any], id: str) -> ConnexionResponse:
    rt = runtime.get()
    view = await views.get(db=rt.db, settings=rt.settings,
                           tenant=principal(token_info).tenant, export_id=UUID(id),
                           if_none_match=header("if-none-match"))
    if view.body is None:
        return not_modified(view.etag)
    return json(view.body, headers={"ETag": view.etag})


async def download_export(id: str, expires: int, sig: str) -> FileResponse:
    rt = runtime.get()
    found = await signed_urls.download(db=rt.db, settings=rt.settings,
                                       store=store.configured(rt.settings), export_id=UUID(id),
                                       expires=expires, sig=sig)
    digest = base64.b64encode(bytes.fromhex(found.sha256)).decode()
    return FileResponse(found.path, media_type="application/gzip", filename=found.media_name,
                        headers={"Content-Digest": f"sha-256=:{digest}:"})
