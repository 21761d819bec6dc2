"""GET /formList, form download, manifest and media (OpenRosa Form List API)."""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import FileResponse

from core.errors import NotFound
from sync_server import openrosa
from sync_server.deps import Ctx, CurrentAccount, FormInfo, ServerContext, device_id

router = APIRouter(tags=["openrosa"])


def _xml(body: bytes) -> Response:
    # Collect is strict about the content type (docs/design.md §1): exactly text/xml; charset=utf-8.
    return Response(content=body, headers={"Content-Type": openrosa.XML_CONTENT_TYPE})


def _form(ctx: ServerContext, form_id: str, version: str | None) -> FormInfo:
    info = ctx.forms.get(form_id, version)
    if info is None:
        what = f"'{form_id}'" + (f" phiên bản {version}" if version else "")
        raise NotFound(
            f"Không có biểu mẫu {what} trên máy chủ. Hãy tải lại danh sách biểu mẫu.",
            f"Form '{form_id}'{f' version {version}' if version else ''} is not on this server. "
            "Refresh the form list.",
            code="form_unknown",
        )
    return info


@router.get("/formList")
def form_list(
    request: Request,
    ctx: Ctx,
    account: CurrentAccount,
    background: BackgroundTasks,
    formID: str | None = None,
) -> Response:  # noqa: N803 - the parameter name is the protocol's
    base = ctx.base_url(request)
    entries = []
    for f in ctx.forms.current():
        if formID and f.form_id != formID:
            continue
        fid = quote(f.form_id, safe="")
        entries.append(
            openrosa.FormEntry(
                form_id=f.form_id,
                name=f.title,
                version=f.version,
                hash=f.hash,
                download_url=f"{base}/forms/{fid}/form.xml",
                manifest_url=f"{base}/forms/{fid}/manifest" if f.media else None,
            )
        )
    ctx.devices.touch_later(background, device_id(request), account, "formList")
    return _xml(openrosa.form_list_xml(entries))


@router.get("/forms/{form_id}/form.xml")
def form_download(form_id: str, ctx: Ctx, account: CurrentAccount, version: str | None = None) -> Response:
    # The exact bytes whose md5 the formList announced.
    return _xml(_form(ctx, form_id, version).built.xml_bytes())


@router.get("/forms/{form_id}/manifest")
def manifest(
    form_id: str, request: Request, ctx: Ctx, account: CurrentAccount, version: str | None = None
) -> Response:
    built = _form(ctx, form_id, version).built
    base = ctx.base_url(request)
    suffix = f"?version={quote(version, safe='')}" if version else ""
    media = [
        openrosa.MediaEntry(
            m.filename,
            m.hash,
            f"{base}/forms/{quote(form_id, safe='')}/media/{quote(m.filename, safe='')}{suffix}",
        )
        for m in built.media
    ]
    return _xml(openrosa.manifest_xml(media))


@router.get("/forms/{form_id}/media/{filename}")
def media_file(
    form_id: str, filename: str, ctx: Ctx, account: CurrentAccount, version: str | None = None
) -> Response:
    built = _form(ctx, form_id, version).built
    m = next((m for m in built.media if m.filename == filename), None)
    if m is None or not m.path.is_file():
        raise NotFound(
            f"Biểu mẫu '{form_id}' không có tệp {filename}.",
            f"Form '{form_id}' has no media file {filename}.",
        )
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if ctype.startswith("text/"):
        ctype += "; charset=utf-8"
    return FileResponse(m.path, headers={"Content-Type": ctype})
