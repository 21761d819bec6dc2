"""The tables indicators count over (child observations, households, facility checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql.schema import Column

from aggregator.models import ChildObservation, FacilityCheck, Household


@dataclass(frozen=True)
class Source:
    """A table indicators count over, and the column identifying one unit for stock ("latest per unit")."""

    name: str
    model: Any
    stock_key: str | None

    @property
    def table(self) -> Any:
        return self.model.__table__

    def column(self, name: str) -> Column[Any]:
        return self.table.c[name]  # type: ignore[no-any-return]


SOURCES: dict[str, Source] = {
    "child": Source("child", ChildObservation, "child_id"),
    "household": Source("household", Household, None),  # no household registry id yet: flows only
    "facility": Source("facility", FacilityCheck, "commune_code"),  # one health station per commune
}
