"""Data quality (GET /quality): flags, quarantine (reason + retry), competing edits (winner + choose another),
registry duplicates (same child / different children). Each decision is applied by ingestion and recorded
in the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from console import audit
from console.pages.render import render
from console.pages.scope import unit_clause, unit_visible
from console.sessions import Officer, area_scope, client_address, read_form, require_officer
from core.errors import NotFound
from core.stores import doc_visible
from sync_server.deps import ServerContext

router = APIRouter(tags=["console"])
SignedIn = Annotated[Officer, Depends(require_officer())]


def _data(ctx: ServerContext, visible: str) -> dict[str, Any]:
    from aggregator import forks
    from aggregator.db import session_scope
    from aggregator.models import Child, QualityFlag, Quarantine, RawSubmission, RegistryConflict

    ctx.ensure_ready()
    where = unit_clause(RawSubmission, visible)
    with session_scope(ctx.settings) as s:
        q = (
            select(QualityFlag.code, func.count())  # type: ignore[call-overload,union-attr,arg-type]
            .join(RawSubmission, RawSubmission.id == QualityFlag.submission_id)
            .group_by(QualityFlag.code)
        )
        flags = list(s.execute(q.where(where) if where is not None else q))
        quarantine = []
        oldest = select(Quarantine).order_by(col(Quarantine.last_failed_at)).limit(500)
        for row in s.execute(oldest).scalars():
            doc = ctx.submissions.get(row.submission_id)
            if doc is not None and doc_visible(visible, doc):
                quarantine.append(row)
        edits = [
            {"record": g["record"], "edits": g["heads"], "winner": g["counts"], "chosen": g["chosen"]}
            for g in forks.competing_versions(s)
            if all(unit_visible(visible, e.district_code, e.commune_code) for e in g["heads"])
        ]
        dups = []
        for c in s.execute(select(RegistryConflict).where(RegistryConflict.resolved.is_(False))).scalars():  # type: ignore[attr-defined]
            a, b = s.get(Child, c.child_id_a), s.get(Child, c.child_id_b)
            if a and b and all(unit_visible(visible, x.district_code, x.commune_code) for x in (a, b)):
                dups.append({"conflict": c, "a": a, "b": b})
    return {"flags": flags, "quarantine": quarantine, "edits": edits, "dups": dups}


@router.get("/quality", response_model=None)
async def quality(request: Request, officer: SignedIn, done: str | None = None) -> Response:
    """What needs an officer's eye in their area (area_scope)."""
    data = await run_in_threadpool(_data, request.app.state.ctx, area_scope(officer))
    return render(request, officer, "quality.html", done=done, **data)


def _audit(
    ctx: ServerContext,
    request: Request,
    officer: Officer,
    kind: str,
    doc_id: str,
    reason: str,
    detail: str | None = None,
) -> None:
    audit.record(
        ctx.couch,
        ctx.settings,
        kind,
        actor=officer.name,
        role=officer.role,
        area=officer.area,
        route=f"POST {request.url.path}",
        doc_id=doc_id,
        reason=reason,
        client=client_address(request),
        detail=detail,
    )


def _not_here() -> NotFound:
    return NotFound("Không có mục này trong vùng của bạn.", "No such item in your area.")


@router.post("/quality/retry", response_model=None)
async def retry(request: Request, officer: SignedIn) -> Response:
    """Re-process one quarantined record now (it must be in the officer's area)."""
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, officer)
    doc_id = form.get("doc_id", "")
    doc = await run_in_threadpool(ctx.submissions.get, doc_id) if doc_id else None
    if doc is None or not doc_visible(area_scope(officer), doc):
        raise _not_here()

    def run() -> dict[str, int]:
        from aggregator.follower import retry_quarantine

        out = retry_quarantine(ctx.settings, ids=[doc_id], couch=ctx.couch)
        _audit(
            ctx,
            request,
            officer,
            audit.QUARANTINE_RETRY,
            doc_id,
            "ingested" if out["ingested"] else "still_failing",
        )
        return out

    await run_in_threadpool(run)
    return RedirectResponse("/quality?done=retry", status_code=303)


@router.post("/quality/edit", response_model=None)
async def choose(request: Request, officer: SignedIn) -> Response:
    """Choose which competing edit of a record counts (every edit must be in the officer's area)."""
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, officer)
    record, chosen = form.get("record", ""), form.get("chosen", "")
    visible = area_scope(officer)

    def run() -> None:
        from aggregator.choices import choose_version, heads
        from aggregator.db import session_scope

        with session_scope(ctx.settings) as s:
            group = heads(s, record)
            ok = chosen in {e.id for e in group} and all(
                unit_visible(visible, e.district_code, e.commune_code) for e in group
            )
        if not ok:
            raise _not_here()
        # The library function of rule 1 (aggregator.choices): records the pick, re-applies the record
        # through ingestion and refreshes the indicators.
        choose_version(ctx.settings, record, chosen, chosen_by=officer.name, couch=ctx.couch)
        _audit(ctx, request, officer, audit.EDIT_CHOICE, chosen, "chosen", detail=f"record {record}")

    await run_in_threadpool(run)
    return RedirectResponse("/quality?done=edit", status_code=303)


@router.post("/quality/duplicate", response_model=None)
async def duplicate(request: Request, officer: SignedIn) -> Response:
    """Same child / different children for a registry conflict (both children in the officer's area)."""
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, officer)
    conflict_id, decision = form.get("conflict", ""), form.get("decision", "")
    visible = area_scope(officer)

    def run() -> None:
        from aggregator.db import session_scope
        from aggregator.follower import apply_duplicate_decision
        from aggregator.models import Child, RegistryConflict

        with session_scope(ctx.settings) as s:
            c = s.get(RegistryConflict, conflict_id)
            kids = [s.get(Child, c.child_id_a), s.get(Child, c.child_id_b)] if c else []
            ok = bool(kids) and all(
                k is not None and unit_visible(visible, k.district_code, k.commune_code) for k in kids
            )
        if not ok:
            raise _not_here()
        apply_duplicate_decision(ctx.settings, conflict_id, decision, officer.name)
        _audit(ctx, request, officer, audit.DUPLICATE_DECISION, conflict_id, decision)

    await run_in_threadpool(run)
    return RedirectResponse("/quality?done=duplicate", status_code=303)
