"""GET /reports/{level}/{area}[.xlsx|.csv]: the officers' indicator report, scoped to the reader's area.

District officers read their own district (and its communes); province accounts read everything; collaborators
get 403. Refusals on this browser-facing path are small HTML pages (Vietnamese first), not OpenRosa envelopes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from lxml import etree
from lxml.html import builder as E

from core.errors import Forbidden, NotFound, Problem
from core.orgunits import may_see
from sync_server.auth import Account, require_roles, visible_area
from sync_server.deps import Ctx

router = APIRouter(tags=["reports"])
Officer = Annotated[Account, Depends(require_roles("district", "province"))]

MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def _error_page(exc: Problem) -> HTMLResponse:
    doc = E.HTML(
        E.HEAD(E.META(charset="utf-8"), E.TITLE(f"{exc.status} {exc.title}")),
        E.BODY(
            E.H1(f"{exc.status} — {exc.title}"),
            E.P(exc.message),
            E.P(exc.message_en) if exc.message_en != exc.message else E.P(),
            style="font-family: sans-serif; max-width: 40em; margin: 3em auto; color: #1f2933",
        ),
        lang="vi",
    )
    body = b"<!DOCTYPE html>\n" + etree.tostring(doc, method="html", encoding="utf-8")
    return HTMLResponse(body, status_code=exc.status, headers=exc.headers)


@router.get("/reports/{level}/{area}", response_model=None)
def report(
    level: str,
    area: str,
    ctx: Ctx,
    account: Officer,
    period: str | None = None,
    hierarchy: str = "legacy",
    lang: str | None = None,
) -> Response:
    """The report as HTML; ``{area}.xlsx`` or ``{area}.csv`` for the spreadsheet and the long table."""
    from aggregator.periods import default_period
    from aggregator.reports.render import render

    code, _, fmt = area.partition(".")
    fmt = fmt or "html"
    settings = ctx.settings
    try:
        if fmt not in MEDIA_TYPES:
            raise NotFound(f"Không có định dạng '{fmt}'; dùng .xlsx hoặc .csv.",
                           f"There is no '{fmt}' format; use .xlsx or .csv.")
        if not may_see(visible_area(account), level, code, hierarchy):
            raise Forbidden(
                f"Tài khoản {account.name} chỉ xem được báo cáo của vùng {visible_area(account)}, "
                f"không xem được {level} {code}.",
                f"Account {account.name} may read reports of area {visible_area(account)} only, "
                f"not {level} {code}.",
            )
        per = period or default_period().code
        body = render(settings, level=level, area=code, period=per, hierarchy=hierarchy, fmt=fmt,
                      lang=lang or settings.language)
    except Problem as exc:
        return _error_page(exc)
    headers = {"Cache-Control": "private, no-store"}
    if fmt != "html":
        headers["Content-Disposition"] = f'attachment; filename="carecheck_{level}_{code}_{per}.{fmt}"'
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)
