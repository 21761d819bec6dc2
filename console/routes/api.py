"""The operator JSON API (/api/v1): submissions and devices, scoped to the reader's area.

Collaborators get 403 here (they submit; reading records back is the officers' job). District officers see
submissions sent by accounts in their district or captured in it; province accounts see everything. A record
outside the reader's area is a 404, so its existence does not leak.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from core.errors import NotFound
from core.stores import doc_visible
from sync_server import openrosa
from sync_server.auth import Account, require_roles, visible_area
from sync_server.deps import ReadyCtx, ServerContext

router = APIRouter(prefix="/api/v1", tags=["api"])
Officer = Annotated[Account, Depends(require_roles("district", "province"))]


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance_id": doc["_id"],
        "form_id": doc.get("form_id"),
        "form_version": doc.get("form_version"),
        "received_at": doc.get("received_at"),
        "submitted_by": doc.get("submitted_by"),
        "device_id": doc.get("device_id"),
        "area": doc.get("area"),
        "org_unit": doc.get("org_unit"),
        "deprecated_id": doc.get("deprecated_id"),
        "attachments": sorted(doc.get("_attachments") or {}),
    }


@router.get("/submissions")
def list_submissions(
    ctx: ReadyCtx,
    account: Officer,
    form_id: str | None = None,
    since: Annotated[
        str | None,
        Query(description="ISO-8601 UTC time (strictly after) or the `next` cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Submissions in the reader's area received after ``since``, oldest first; ``next`` pages on."""
    docs, nxt = ctx.submissions.page(visible_area(account), form_id=form_id, since=since, limit=limit)
    return {"items": [_summary(d) for d in docs], "next": nxt, "area": visible_area(account)}


@router.get("/submissions/{instance_id}")
def get_submission(instance_id: str, ctx: ReadyCtx, account: Officer) -> dict[str, Any]:
    """One submission: answers, attachment names, status (current/superseded) and its version chain."""
    doc = ctx.submissions.get(instance_id)
    if doc is None or not doc_visible(visible_area(account), doc):
        raise NotFound(
            f"Không có phiếu {instance_id} trong vùng của bạn.", f"No submission {instance_id} in your area."
        )
    superseded_by = ctx.submissions.superseded_by(doc["_id"])
    chain = ctx.submissions.versions(doc)
    out = _summary(doc)
    out.update(
        {
            "status": "superseded" if superseded_by else "current",
            "superseded_by": superseded_by,
            "attachments_expected": doc.get("attachments_expected", []),
            "fields": _fields(ctx, doc),
            "versions": [
                {
                    "instance_id": d["_id"],
                    "received_at": d.get("received_at"),
                    "status": "superseded" if i < len(chain) - 1 else "current",
                }
                for i, d in enumerate(chain)
            ],
        }
    )
    return out


def _fields(ctx: ServerContext, doc: dict[str, Any]) -> dict[str, Any]:
    root = openrosa.parse_instance(str(doc["xml"]).encode("utf-8")).root
    form = ctx.forms.get(str(doc.get("form_id", "")), doc.get("form_version"))
    return dict(openrosa.instance_to_dict(root, form.repeats if form else None))


@router.get("/devices")
def devices(ctx: ReadyCtx, account: Officer) -> dict[str, Any]:
    """Per device and collaborator: area, last contact, last submission, days since, counts."""
    return {"area": visible_area(account), "devices": ctx.devices.report(visible_area(account))}
