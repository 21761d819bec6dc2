"""Submissions (GET /submissions, GET /submissions/{id}, POST /submissions/{id}/reveal): a filtered list of
the area's records and a detail view. Identifiable answers (names, personal ids, GPS) are masked; commune
and district officers — who follow children up in person — may reveal them on one record at a time, and each
reveal is recorded in the audit log. Province officers work with aggregates and never see them here."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from console import audit
from console.pages.render import render
from console.pages.scope import unit_clause
from console.sessions import Officer, area_scope, client_address, read_form, require_officer
from core import orgunits
from core.errors import BadRequest, Forbidden, NotFound
from core.orgunits import may_see
from core.stores import doc_visible
from sync_server import openrosa
from sync_server.deps import ServerContext

router = APIRouter(tags=["console"])
SignedIn = Annotated[Officer, Depends(require_officer())]
IDENTIFIABLE = frozenset({"head_name", "child_name", "personal_id", "gps"})
REVEAL_ROLES = ("commune", "district")
PAGE = 50


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"Ngày '{name}' phải có dạng YYYY-MM-DD.", f"Date '{name}' must be YYYY-MM-DD."
        ) from None


def _list(ctx: ServerContext, visible: str, f: dict[str, Any]) -> dict[str, Any]:
    from aggregator.db import session_scope
    from aggregator.models import QualityFlag
    from aggregator.models import RawSubmission as R

    q = select(  # type: ignore[call-overload,union-attr,arg-type]
        R.id,
        R.form_id,
        R.received_at,
        R.submitted_by,
        R.district_code,
        R.commune_code,
        R.superseded,
        R.deleted,
    )
    where = unit_clause(R, visible)
    if where is not None:
        q = q.where(where)
    unit = f.get("unit")
    if unit:
        level = "district" if unit in orgunits.districts() else "commune"
        if not may_see(visible, level, unit):
            raise Forbidden(f"Đơn vị {unit} không thuộc vùng của bạn.", f"Unit {unit} is not in your area.")
        q = q.where((R.district_code if level == "district" else R.commune_code) == unit)
    if f.get("collaborator"):
        q = q.where(R.submitted_by == f["collaborator"])
    if f.get("form"):
        q = q.where(R.form_id == f["form"])
    if f.get("since"):
        q = q.where(R.received_at >= datetime.combine(f["since"], datetime.min.time()))  # type: ignore[operator]
    if f.get("until"):
        q = q.where(R.received_at < datetime.combine(f["until"] + timedelta(days=1), datetime.min.time()))  # type: ignore[operator]
    status = f.get("status")
    if status == "current":
        q = q.where(R.superseded.is_(False), R.deleted.is_(False))  # type: ignore[attr-defined]
    elif status == "superseded":
        q = q.where(R.superseded.is_(True))  # type: ignore[attr-defined]
    elif status == "deleted":
        q = q.where(R.deleted.is_(True))  # type: ignore[attr-defined]
    if f.get("flag"):
        flagged = select(col(QualityFlag.submission_id)).where(col(QualityFlag.code) == f["flag"])
        q = q.where(col(R.id).in_(flagged))
    q = q.order_by(R.received_at.desc()).offset(f["page"] * PAGE).limit(PAGE + 1)  # type: ignore[union-attr]
    with session_scope(ctx.settings) as s:
        rows = [dict(r._mapping) for r in s.execute(q)]
    return {"items": rows[:PAGE], "more": len(rows) > PAGE}


@router.get("/submissions", response_model=None)
async def submissions(
    request: Request,
    officer: SignedIn,
    unit: Annotated[str | None, Query(max_length=5)] = None,
    collaborator: Annotated[str | None, Query(max_length=100)] = None,
    form: Annotated[str | None, Query(max_length=100)] = None,
    since: str | None = None,
    until: str | None = None,
    status: Annotated[str | None, Query(pattern="^(current|superseded|deleted)?$")] = None,
    flag: Annotated[str | None, Query(max_length=60)] = None,
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    """The area's records (area_scope), newest first, 50 a page."""
    f = {
        "unit": unit,
        "collaborator": collaborator,
        "form": form,
        "since": _date(since, "since"),
        "until": _date(until, "until"),
        "status": status,
        "flag": flag,
        "page": page,
    }
    data = await run_in_threadpool(_list, request.app.state.ctx, area_scope(officer), f)
    return render(request, officer, "submissions.html", f=f, **data)


def _detail(ctx: ServerContext, visible: str, instance_id: str) -> dict[str, Any]:
    ctx.ensure_ready()
    doc = ctx.submissions.get(instance_id)
    if doc is None or not doc_visible(visible, doc):
        raise NotFound("Không có phiếu này trong vùng của bạn.", "No such submission in your area.")
    root = openrosa.parse_instance(str(doc["xml"]).encode("utf-8")).root
    form = ctx.forms.get(str(doc.get("form_id", "")), doc.get("form_version"))
    fields = dict(openrosa.instance_to_dict(root, form.repeats if form else None))
    from aggregator.db import session_scope
    from aggregator.models import QualityFlag, Quarantine, RawSubmission

    with session_scope(ctx.settings) as s:
        raw = s.get(RawSubmission, instance_id)
        quarantined = s.get(Quarantine, instance_id)
        flags = [
            (f.code, f.message)
            for f in s.execute(
                select(QualityFlag).where(col(QualityFlag.submission_id) == instance_id)
            ).scalars()
        ]
        ingest = (
            "quarantine: " + quarantined.error
            if quarantined
            else "not yet ingested"
            if raw is None
            else "deleted"
            if raw.deleted
            else "superseded"
            if raw.superseded
            else "counted"
        )
    return {
        "doc": doc,
        "fields": fields,
        "superseded_by": ctx.submissions.superseded_by(doc["_id"]),
        "flags": flags,
        "ingest": ingest,
    }


def _mask(fields: dict[str, Any], reveal: bool) -> dict[str, Any]:
    def one(k: str, v: Any) -> Any:
        if isinstance(v, list):
            return [
                {kk: one(kk, vv) for kk, vv in item.items()} if isinstance(item, dict) else item for item in v
            ]
        return v if reveal or k not in IDENTIFIABLE else "•••"

    return {k: one(k, v) for k, v in fields.items()}


@router.get("/submissions/{instance_id}", response_model=None)
async def submission(request: Request, officer: SignedIn, instance_id: str) -> Response:
    """One record of the area (area_scope; another area's id is a 404), identifiable answers masked."""
    data = await run_in_threadpool(_detail, request.app.state.ctx, area_scope(officer), instance_id)
    data["fields"] = _mask(data["fields"], False)
    return render(
        request, officer, "submission.html", revealed=False, may_reveal=officer.role in REVEAL_ROLES, **data
    )


@router.post("/submissions/{instance_id}/reveal", response_model=None)
async def reveal(request: Request, officer: SignedIn, instance_id: str) -> Response:
    """The same record with names and personal ids — commune and district officers only; recorded."""
    ctx: ServerContext = request.app.state.ctx
    await read_form(request, officer)
    if officer.role not in REVEAL_ROLES:
        raise Forbidden(
            "Vai trò của bạn không xem được thông tin định danh.",
            "Your role may not see identifiable answers.",
        )
    data = await run_in_threadpool(_detail, ctx, area_scope(officer), instance_id)
    await run_in_threadpool(
        audit.record,
        ctx.couch,
        ctx.settings,
        audit.IDENTIFIABLE_VIEW,
        actor=officer.name,
        role=officer.role,
        area=officer.area,
        route="POST /submissions/{id}/reveal",
        doc_id=instance_id,
        client=client_address(request),
    )
    return render(request, officer, "submission.html", revealed=True, may_reveal=True, **data)
