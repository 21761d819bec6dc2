"""Data-quality panel figures: submissions, lag per area type, flags by code, quarantine (aggregates only)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import false, func, or_
from sqlmodel import Session, col, select

from aggregator.models import QualityFlag, Quarantine, RawSubmission
from aggregator.reports.labels import VIETNAM_TIME
from core.orgunits import AREA_TYPES_ALL, PROVINCE_CODE


@dataclass
class LagRow:
    area_type: str  # island | border | mainland | all
    submissions: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass
class QualityPanel:
    received: int = 0
    current: int = 0
    superseded: int = 0
    deleted: int = 0
    lag: list[LagRow] = field(default_factory=list)
    flags: list[tuple[str, int]] = field(default_factory=list)
    quarantined: int = 0
    suppressed_cells: int = 0
    # Edge nodes (island / border stores) of this area: replication state as they last reported it.
    edges: list[dict[str, Any]] = field(default_factory=list)
    edges_unavailable: bool = False  # the store could not be asked; the panel says so instead of "no edges"


def edge_rows(settings: Any, *, level: str, area: str) -> tuple[list[dict[str, Any]], bool]:
    """Edge nodes whose area lies in the report's org unit, from the province store (best effort)."""
    from core.couch import Couch
    from core.errors import Problem
    from core.orgunits import communes, districts
    from core.services import running_embedded_couch
    from core.stores import edge_summary

    url = settings.couchdb_url or running_embedded_couch(settings)
    if not url:  # the embedded store is not running: a report never starts servers as a side effect
        return [], True
    try:
        couch = Couch(url, settings.couchdb_user, settings.couchdb_password, timeout=10)
        try:
            rows = edge_summary(couch, settings)
        finally:
            couch.close()
    except Problem:
        return [], True

    def inside(edge_area: str | None) -> bool:
        if level == "province" or area == PROVINCE_CODE:
            return True
        if not edge_area:
            return False
        if edge_area == area:
            return True
        c = communes().get(edge_area)
        return level == "district" and c is not None and c.district_code == area and area in districts()

    return [r for r in rows if inside(r.get("area"))], False


def _p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile (a value that occurred, as officers expect)."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def area_filter(level: str, area: str, hierarchy: str) -> list[Any]:
    """SQL conditions on RawSubmission selecting an org unit's rows (the org unit stored at capture)."""
    if level == "province" or area == PROVINCE_CODE:
        return []
    if level == "district":
        return [col(RawSubmission.district_code) == area]
    if hierarchy == "2025":
        return [col(RawSubmission.commune_2025_code) == area]
    return [col(RawSubmission.commune_code) == area]


def period_filter(start: date, end_inclusive: date) -> list[Any]:
    """Rows whose form end time (or, lacking it, receipt time) falls in the period."""
    when = func.coalesce(RawSubmission.end_time, RawSubmission.received_at)
    # periods are Vietnamese calendar periods: a visit at 05:00 on 1 October (UTC+7) is in Q4
    lo = datetime.combine(start, time.min, tzinfo=VIETNAM_TIME)
    hi = datetime.combine(end_inclusive + timedelta(days=1), time.min, tzinfo=VIETNAM_TIME)
    return [when >= lo, when < hi]


def quality_panel(
    session: Session, *, level: str, area: str, hierarchy: str, start: date, end_inclusive: date
) -> QualityPanel:
    """The panel for one org unit and period. Quarantine is a current state: counted for the area."""
    where = area_filter(level, area, hierarchy) + period_filter(start, end_inclusive)
    panel = QualityPanel()
    lost = col(RawSubmission.lost_to).is_not(None)  # rule 1: a version of a record edited twice that lost
    counts = session.exec(
        select(RawSubmission.superseded, RawSubmission.deleted, lost, func.count())
        .where(*where)
        .group_by(col(RawSubmission.superseded), col(RawSubmission.deleted), lost)
    ).all()
    for superseded, deleted, lost_to_another, n in counts:
        panel.received += n
        if deleted:
            panel.deleted += n
        elif superseded or lost_to_another:
            panel.superseded += n
        else:
            panel.current += n

    lags: dict[str, list[float]] = {a: [] for a in AREA_TYPES_ALL}
    rows = session.exec(
        select(RawSubmission.area_type, RawSubmission.lag_seconds).where(
            *where,
            col(RawSubmission.deleted) == false(),
            col(RawSubmission.superseded) == false(),
            col(RawSubmission.lag_seconds).is_not(None),
        )
    ).all()
    for area_type, lag in rows:
        if lag is not None:
            lags.setdefault(area_type or "unknown", []).append(float(lag))
    everything: list[float] = []
    for area_type, values in lags.items():
        everything += values
        panel.lag.append(
            LagRow(area_type, len(values), statistics.median(values) if values else None, _p90(values))
        )
    panel.lag.append(
        LagRow(
            "all", len(everything), statistics.median(everything) if everything else None, _p90(everything)
        )
    )

    flag_rows = session.exec(
        select(QualityFlag.code, func.count())
        .join(RawSubmission, col(RawSubmission.id) == col(QualityFlag.submission_id))
        .where(*where, col(RawSubmission.deleted) == false())
        .group_by(QualityFlag.code)
        .order_by(func.count().desc(), QualityFlag.code)
    ).all()
    panel.flags = [(code, int(n)) for code, n in flag_rows]

    q = (
        select(func.count())
        .select_from(Quarantine)
        .join(RawSubmission, col(RawSubmission.id) == col(Quarantine.submission_id), isouter=True)
    )
    scope = area_filter(level, area, hierarchy)
    if scope:
        q = q.where(*scope)
    elif level == "province":
        # a record that never landed has no org unit: the province sees it
        q = q.where(
            or_(
                col(RawSubmission.id).is_(None),
                col(RawSubmission.org_unit_province).is_(None),
                col(RawSubmission.org_unit_province) == PROVINCE_CODE,
            )
        )
    panel.quarantined = int(session.exec(q).one())
    return panel
