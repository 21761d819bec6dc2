"""The indicator model: sources (tables), measures (numerator/denominator), indicators; units and targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, case, literal

from aggregator.indicators.condition import compile_condition
from aggregator.indicators.sources import SOURCES
from aggregator.indicators.status import status as status_of

HERE = Path(__file__).parent

UNITS = {"percent": 100.0, "per_1000": 1000.0, "count": 1.0}
KINDS = ("flow", "stock")
TARGET_OPS = ("<", "<=", ">", ">=", "==")
DIMENSIONS = ("sex", "ethnicity", "area_type", "age_group")
# Values each disaggregation can take (reports list them even when a cell is empty); 'unknown' = not answered.
DIMENSION_VALUES: dict[str, tuple[str, ...]] = {
    "sex": ("male", "female"),
    "ethnicity": ("kinh", "khmer", "hoa", "other"),
    "area_type": ("island", "border", "mainland"),
    "age_group": ("0-4", "5-10", "11-15", "16-17"),
}
REQUIRED = ("code", "name", "doc", "unit", "kind", "numerator")


@dataclass(frozen=True)
class Measure:
    """One side of the ratio: count rows (or sum a column) of ``source`` where ``where`` holds."""

    source: str
    column: str | None = None  # None = count rows
    where: str | None = None

    def describe(self) -> str:
        what = f"count {self.source}" if self.column is None else f"sum {self.column} of {self.source}"
        return f"{what} where {self.where}" if self.where else what

    def condition(self) -> ColumnElement[bool] | None:
        """The row condition as SQL (None: every row)."""
        return compile_condition(self.where, SOURCES[self.source]) if self.where else None

    def sql(self) -> ColumnElement[Any]:
        """The per-row contribution: 1 (or the column's value) when the condition holds, else 0."""
        src = SOURCES[self.source]
        value: ColumnElement[Any] = literal(1) if self.column is None else src.column(self.column)
        cond = compile_condition(self.where, src) if self.where else None
        if self.column is not None:
            value = case((value.is_(None), literal(0)), else_=value)
        if cond is None:
            return value
        return case((cond, value), else_=literal(0))


@dataclass(frozen=True)
class Indicator:
    code: str
    name_vi: str
    name_en: str
    doc: str
    unit: str
    kind: str
    source: str
    numerator: Measure
    denominator: Measure  # for unit "count": the population observed (suppression, no-data), not divided by
    disaggregate: tuple[str, ...]
    target: dict[str, Any] | None
    file: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def factor(self) -> float:
        return UNITS[self.unit]

    def value(self, numerator: float | None, denominator: float | None) -> float | None:
        if numerator is None or not denominator:
            return None
        if self.unit == "count":
            return float(numerator)
        return self.factor * float(numerator) / float(denominator)

    def status(self, value: float | None, *, suppressed: bool = False) -> str:
        """Rule 9's one status (``aggregator.indicators.status``)."""
        return status_of(value, self.target, suppressed=suppressed)

    @property
    def clause(self) -> dict[str, str]:
        """The plan clause the indicator answers to, in both languages (every indicator cites one)."""
        t = self.target or {}
        return {"vi": str(t.get("clause_vi") or t.get("clause") or ""), "en": str(t.get("clause") or "")}


# ---------------------------------------------------------------- the condition language
