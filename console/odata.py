"""OData v4 feed at /odata/v4/ for Excel Power Query / Power BI: indicator values and de-identified row tables
of the reader's area, scoped exactly like /api/v1/indicators (``may_see`` on every row).

JSON format (``odata.metadata=minimal``), a CSDL ``$metadata``, ``$top``/``$skip``, ``$filter`` with ``eq``
joined by ``and`` on the period and the unit (and level / hierarchy / indicator for indicator values), and
server-driven paging: at most ``PAGE`` entities per response, then ``@odata.nextLink`` (``$skiptoken``).
Sign-in: the console session cookie, or Basic/Digest like the operator API (what Power Query sends).
Row tables carry no names, personal ids, child or household pseudonyms: the answers and the place and period.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree
from starlette.concurrency import run_in_threadpool

from console import audit
from console.sessions import officer_account
from core import orgunits
from core.errors import BadRequest, Forbidden
from core.orgunits import may_see
from sync_server.auth import Account, visible_area
from sync_server.deps import ServerContext

router = APIRouter(prefix="/odata/v4", tags=["odata"])
PAGE = 200
NS = "carecheck"
EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"
HEADERS = {"OData-Version": "4.0", "Cache-Control": "private, no-store"}

INDICATOR_PROPS: dict[str, str] = {
    "id": "Edm.String",
    "indicator": "Edm.String",
    "name_vi": "Edm.String",
    "name_en": "Edm.String",
    "unit": "Edm.String",
    "org_unit": "Edm.String",
    "org_unit_name": "Edm.String",
    "level": "Edm.String",
    "hierarchy": "Edm.String",
    "period": "Edm.String",
    "numerator": "Edm.Double",
    "denominator": "Edm.Double",
    "value": "Edm.Double",
    "status": "Edm.String",
    "target_op": "Edm.String",
    "target_value": "Edm.Double",
}
ROW_COLUMNS = {
    "ChildObservations": (
        "ChildObservation",
        (
            "id",
            "visit_date",
            "year",
            "quarter",
            "month",
            "school_year",
            "district_code",
            "commune_code",
            "commune_2025_code",
            "area_type",
            "sex",
            "ethnicity",
            "age_years",
            "age_months",
            "birth_registered",
            "has_valid_personal_id",
            "attends_school",
            "school_level",
            "imm_card_seen",
            "weight_kg",
            "height_cm",
            "waz",
            "haz",
            "whz",
            "can_swim",
            "functional_difficulty",
            "orphan_status",
            "care_arrangement",
            "in_special_circumstance",
            "at_risk",
            "support_received",
            "violence_signs",
            "referred",
            "play_space_access",
            "injury_12m",
            "injury_drowning",
        ),
    ),
    "Households": (
        "Household",
        (
            "submission_id",
            "visit_date",
            "year",
            "quarter",
            "month",
            "school_year",
            "district_code",
            "commune_code",
            "commune_2025_code",
            "area_type",
            "poverty_status",
            "unfenced_water",
            "hotline_111_aware",
            "births_12m",
            "under5_deaths_12m",
            "consent",
            "n_children",
        ),
    ),
}
ENTITY_SETS = ("IndicatorValues", *ROW_COLUMNS)
_EQ = re.compile(r"^\(*\s*([a-z_0-9]+)\s+eq\s+'((?:[^']|'')*)'\s*\)*$")


Reader = Annotated[Account, Depends(officer_account)]


def _bad(vi: str, en: str) -> BadRequest:
    return BadRequest(vi, en, code="odata_query_invalid")


def parse_filter(text: str | None, allowed: set[str]) -> dict[str, str]:
    """``a eq 'x' and b eq 'y'`` (parentheses allowed) → {a: x, b: y}; anything else is refused clearly."""
    out: dict[str, str] = {}
    if not text:
        return out
    for part in re.split(r"\s+and\s+", text.strip().strip("()")):
        m = _EQ.match(part.strip())
        if not m or m.group(1) not in allowed:
            raise _bad(
                f"$filter chỉ hỗ trợ 'thuộc tính eq \\'giá trị\\'' nối bằng 'and' trên {sorted(allowed)}.",
                f"$filter supports only \"<property> eq '<value>'\" joined by 'and', on {sorted(allowed)}.",
            )
        out[m.group(1)] = m.group(2).replace("''", "'")
    return out


def _int(value: str | None, name: str) -> int:
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 9:
        raise _bad(f"{name} phải là số nguyên không âm.", f"{name} must be a non-negative integer.")
    return int(value)


def _level_of(unit: str) -> str:
    if unit == orgunits.PROVINCE_CODE:
        return "province"
    return "district" if len(unit) == 3 else "commune"


def indicator_rows(settings: Any, visible: str, f: dict[str, str]) -> list[dict[str, Any]]:
    """The rows /api/v1/indicators gives for the same level, area, period and hierarchy, as entities."""
    from aggregator.db import session_scope
    from aggregator.periods import default_period
    from aggregator.rollup import query_indicators

    hierarchy = f.get("hierarchy", "legacy")
    unit = f.get("org_unit")
    level = f.get("level") or (_level_of(unit) if unit else _level_of(visible))
    if unit is not None and not may_see(visible, level, unit, hierarchy):
        raise Forbidden(f"Không đọc được {level} {unit}.", f"You may not read {level} {unit}.")
    if unit is None and visible != orgunits.PROVINCE_CODE and level == "province":
        raise Forbidden("Không đọc được số liệu cấp tỉnh.", "You may not read province figures.")
    with session_scope(settings) as s:
        rows = query_indicators(
            s,
            level=level,
            area=unit,
            period=f.get("period") or default_period().code,
            hierarchy=hierarchy,
            indicators=[f["indicator"]] if "indicator" in f else None,
            suppress=True,
            min_cell=settings.min_cell_size,
        )
    out = []
    for r in rows:
        if not may_see(visible, r.level, r.org_unit, hierarchy):
            continue
        target = r.target or {}
        out.append(
            {
                "id": f"{r.indicator}|{r.hierarchy}|{r.level}|{r.org_unit}|{r.period}",
                "indicator": r.indicator,
                "name_vi": r.name_vi,
                "name_en": r.name_en,
                "unit": r.unit,
                "org_unit": r.org_unit,
                "org_unit_name": r.org_unit_name,
                "level": r.level,
                "hierarchy": r.hierarchy,
                "period": r.period,
                "numerator": r.numerator,
                "denominator": r.denominator,
                "value": r.value,
                "status": r.status,
                "target_op": target.get("op"),
                "target_value": target.get("value"),
            }
        )
    return out


def _model(name: str) -> Any:
    from aggregator import models

    return getattr(models, ROW_COLUMNS[name][0])


def row_page(
    settings: Any, visible: str, name: str, f: dict[str, str], skip: int, take: int, count: bool = False
) -> tuple[list[dict[str, Any]], int | None]:
    """De-identified rows of the reader's area (where the visit took place), filtered by period and unit;
    with ``count`` also how many rows match in all (``$count=true``)."""
    from sqlalchemy import func, select

    from aggregator.db import session_scope
    from aggregator.periods import parse_period

    model = _model(name)
    cols = ROW_COLUMNS[name][1]
    key = model.id if name == "ChildObservations" else model.submission_id
    q = select(*[getattr(model, c) for c in cols]).order_by(key)
    if visible != orgunits.PROVINCE_CODE:
        q = q.where(
            (model.district_code if visible in orgunits.districts() else model.commune_code) == visible
        )
    for unit_col in ("district_code", "commune_code"):
        if unit_col in f:
            level = "district" if unit_col == "district_code" else "commune"
            if not may_see(visible, level, f[unit_col]):
                raise Forbidden(f"Không đọc được {f[unit_col]}.", f"You may not read {f[unit_col]}.")
            q = q.where(getattr(model, unit_col) == f[unit_col])
    if "period" in f:
        try:
            p = parse_period(f["period"])
        except Exception as exc:  # noqa: BLE001
            raise _bad("Kỳ không hợp lệ.", f"Period {f['period']!r} is not valid.") from exc
        if p.type == "school_year":
            q = q.where(model.school_year == p.code.removeprefix("SY"))
        else:
            q = q.where(model.year == p.start.year)
            if p.type == "quarter":
                q = q.where(model.quarter == (p.start.month - 1) // 3 + 1)
            elif p.type == "month":
                q = q.where(model.month == p.start.month)
    with session_scope(settings) as s:
        total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one() if count else None
        rows = [dict(zip(cols, r, strict=True)) for r in s.execute(q.offset(skip).limit(take))]
    for r in rows:
        for k, v in r.items():
            if isinstance(v, date):
                r[k] = v.isoformat()
    return rows, total


def _edm(model: Any, col: str) -> str:
    t = model.__table__.c[col].type.python_type
    return {
        str: "Edm.String",
        int: "Edm.Int32",
        float: "Edm.Double",
        bool: "Edm.Boolean",
        date: "Edm.Date",
    }.get(t, "Edm.String")


def metadata_xml() -> bytes:
    """The CSDL document: one entity type per set, keys, nullable properties."""
    root = etree.Element(f"{{{EDMX}}}Edmx", nsmap={"edmx": EDMX}, Version="4.0")
    ds = etree.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = etree.SubElement(ds, f"{{{EDM}}}Schema", nsmap={None: EDM}, Namespace=NS)

    def entity(name: str, key: str, props: dict[str, str]) -> None:
        et = etree.SubElement(schema, f"{{{EDM}}}EntityType", Name=name)
        k = etree.SubElement(et, f"{{{EDM}}}Key")
        etree.SubElement(k, f"{{{EDM}}}PropertyRef", Name=key)
        for p, t in props.items():
            attrs = {"Name": p, "Type": t}
            if p == key:
                attrs["Nullable"] = "false"
            etree.SubElement(et, f"{{{EDM}}}Property", **attrs)

    entity("IndicatorValue", "id", INDICATOR_PROPS)
    for name, (model_name, cols) in ROW_COLUMNS.items():
        model = _model(name)
        entity(model_name, cols[0], {c: _edm(model, c) for c in cols})
    container = etree.SubElement(schema, f"{{{EDM}}}EntityContainer", Name="Container")
    etree.SubElement(
        container, f"{{{EDM}}}EntitySet", Name="IndicatorValues", EntityType=f"{NS}.IndicatorValue"
    )
    for name, (model_name, _) in ROW_COLUMNS.items():
        etree.SubElement(container, f"{{{EDM}}}EntitySet", Name=name, EntityType=f"{NS}.{model_name}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _base(request: Request) -> str:
    ctx: ServerContext = request.app.state.ctx
    return ctx.base_url(request) + "/odata/v4/"


@router.get("/", response_model=None)
def service_document(request: Request, account: Reader) -> Response:
    """The entity sets (same for every officer; what they hold is scoped by visible_area)."""
    visible_area(account)
    return JSONResponse(
        {
            "@odata.context": _base(request) + "$metadata",
            "value": [{"name": n, "kind": "EntitySet", "url": n} for n in ENTITY_SETS],
        },
        headers=HEADERS,
    )


@router.get("/$metadata", response_model=None)
def metadata(account: Reader) -> Response:
    """CSDL XML."""
    visible_area(account)
    return Response(metadata_xml(), media_type="application/xml", headers=HEADERS)


@router.get("/{entity_set}", response_model=None)
async def entity_set(request: Request, account: Reader, entity_set: str) -> Response:
    """One page of an entity set for the reader's area (visible_area), with @odata.nextLink when more."""
    ctx: ServerContext = request.app.state.ctx
    visible = visible_area(account)
    q = request.query_params
    unknown = {k for k in q if k.startswith("$")} - {
        "$filter",
        "$top",
        "$skip",
        "$skiptoken",
        "$format",
        "$count",
    }
    if unknown:
        raise _bad(f"Không hỗ trợ {sorted(unknown)}.", f"Unsupported query options {sorted(unknown)}.")
    top = _int(q.get("$top"), "$top") if q.get("$top") is not None else None
    skip, token = _int(q.get("$skip"), "$skip"), _int(q.get("$skiptoken"), "$skiptoken")
    count_asked = q.get("$count", "false").lower() == "true"
    total: int | None = None
    if entity_set == "IndicatorValues":
        f = parse_filter(q.get("$filter"), {"period", "org_unit", "level", "hierarchy", "indicator"})
        rows = await run_in_threadpool(indicator_rows, ctx.settings, visible, f)
        wanted = rows[skip:] if top is None else rows[skip : skip + top]
        page, more = wanted[token : token + PAGE], token + PAGE < len(wanted)
        total = len(rows) if count_asked else None  # $count ignores $top and $skip (OData 4.01 §11.2.5.5)
    elif entity_set in ROW_COLUMNS:
        f = parse_filter(q.get("$filter"), {"period", "district_code", "commune_code"})
        remaining = None if top is None else max(0, top - token)
        take = PAGE if remaining is None else min(PAGE, remaining)
        page, total = await run_in_threadpool(
            row_page, ctx.settings, visible, entity_set, f, skip + token, take + 1, count_asked
        )
        more = len(page) > take and (remaining is None or remaining > take)
        page = page[:take]
    else:
        from core.errors import NotFound

        raise NotFound(f"Không có tập thực thể '{entity_set}'.", f"No entity set '{entity_set}'.")
    if not token:  # one export event per read (its first page), not one per page
        await run_in_threadpool(
            audit.record, ctx.couch, ctx.settings, audit.EXPORT, actor=account.name, role=account.role,
            area=account.area, route=f"GET /odata/v4/{entity_set}", reason=f"odata_{entity_set}",
            detail=(q.get("$filter") or "")[:200] or None,
        )
    body: dict[str, Any] = {"@odata.context": f"{_base(request)}$metadata#{entity_set}"}
    if total is not None:
        body["@odata.count"] = total
    body["value"] = page
    if more:
        params = {k: v for k, v in q.items() if k != "$skiptoken"}
        params["$skiptoken"] = str(token + PAGE)
        body["@odata.nextLink"] = f"{_base(request)}{entity_set}?{urlencode(params)}"
    return JSONResponse(body, headers=HEADERS)
