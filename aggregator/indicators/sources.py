"""The tables indicators count over (child observations, households, facility checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.sql.schema import Column

from aggregator.models import ChildObservation, FacilityCheck, Household


@dataclass(frozen=True)
class Source:
    """A table indicators count over, and the column identifying one unit for stock ("latest per unit")."""

    name: str
    model: Any
    stock_key: str | None
    # a row whose stock key is NULL is a unit of its own (its primary key), not one unit with all the others
    own_unit_when_null: bool = False
    # rule 3: rows of this table are visits of one unit that must count once per period (stocks only)
    once_per_period: bool = False

    @property
    def table(self) -> Any:
        return self.model.__table__

    def unit(self) -> Any:
        """The SQL expression identifying one unit (a child, a household, a station) for stock indicators."""
        key = self.table.c[self.stock_key or ""]
        if self.own_unit_when_null:
            return func.coalesce(key, list(self.table.primary_key)[0])
        return key

    def column(self, name: str) -> Column[Any]:
        return self.table.c[name]  # type: ignore[no-any-return]


SOURCES: dict[str, Source] = {
    "child": Source("child", ChildObservation, "child_id"),
    # rule 3: a household counts once per period (its latest visit), keyed by the registry's household key
    "household": Source(
        "household", Household, "household_key", own_unit_when_null=True, once_per_period=True
    ),
    "facility": Source("facility", FacilityCheck, "commune_code"),  # one health station per commune
}
