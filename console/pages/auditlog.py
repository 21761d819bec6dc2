"""Audit log (GET /audit, GET /audit.csv): the append-only record, filtered; the province admin reads all of
it and exports it (the export is itself recorded); a district admin reads the events of their district.
Nothing here writes to the log except the export event: no route edits or deletes an entry."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from console import audit
from console.pages.render import render
from console.sessions import Officer, area_scope, client_address, require_officer
from core import orgunits
from core.errors import BadRequest, Forbidden
from sync_server.deps import ServerContext

router = APIRouter(tags=["console"])
Admin = Annotated[Officer, Depends(require_officer(admin=True, roles=("district", "province")))]


def _filters(kind: str | None, actor: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    for name, v in (("since", since), ("until", until)):
        if v:
            try:
                date.fromisoformat(v)
            except ValueError:
                raise BadRequest(
                    f"Ngày '{name}' phải có dạng YYYY-MM-DD.", f"Date '{name}' must be YYYY-MM-DD."
                ) from None
    if kind and kind not in audit.KINDS:
        raise BadRequest(f"Không có loại sự kiện '{kind}'.", f"No event kind '{kind}'.")
    return {"kind": kind or None, "actor": actor or None, "since": since or None, "until": until or None}


def _areas(visible: str) -> set[str] | None:
    return None if visible == orgunits.PROVINCE_CODE else set(orgunits.area_codes(visible))


@router.get("/audit", response_model=None)
async def audit_page(
    request: Request,
    officer: Admin,
    kind: str | None = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    since: str | None = None,
    until: str | None = None,
) -> Response:
    """Newest first, 200 at most; filters by kind, actor and dates; scoped by area_scope."""
    ctx: ServerContext = request.app.state.ctx
    f = _filters(kind, actor, since, until)
    events = await run_in_threadpool(
        lambda: audit.search(ctx.couch, ctx.settings, areas=_areas(area_scope(officer)), **f)
    )
    return render(request, officer, "audit.html", events=events, f=f, kinds=audit.KINDS, fields=audit.FIELDS)


@router.get("/audit.csv", response_model=None)
async def audit_export(
    request: Request,
    officer: Admin,
    kind: str | None = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    since: str | None = None,
    until: str | None = None,
) -> Response:
    """CSV of the filtered events (province admin only); the export is recorded."""
    ctx: ServerContext = request.app.state.ctx
    if area_scope(officer) != orgunits.PROVINCE_CODE:
        raise Forbidden(
            "Chỉ quản trị cấp tỉnh xuất được nhật ký.", "Only the province admin exports the log."
        )
    f = _filters(kind, actor, since, until)
    events = await run_in_threadpool(lambda: audit.search(ctx.couch, ctx.settings, limit=100_000, **f))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(audit.FIELDS))
    w.writeheader()
    w.writerows(events)
    await run_in_threadpool(
        audit.record,
        ctx.couch,
        ctx.settings,
        audit.EXPORT,
        actor=officer.name,
        role=officer.role,
        area=officer.area,
        route="GET /audit.csv",
        reason="audit_log",
        client=client_address(request),
        detail=f"{len(events)} events",
    )
    return Response(
        buf.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="carecheck-audit.csv"',
            "Cache-Control": "private, no-store",
        },
    )
