"""Area scoping of SQL rows for console pages: where a visit took place (district / commune codes)."""

from __future__ import annotations

from typing import Any

from core import orgunits


def unit_clause(model: Any, visible: str) -> Any | None:
    """The WHERE clause keeping ``model``'s rows inside ``visible`` (None for the province: everything)."""
    if visible == orgunits.PROVINCE_CODE:
        return None
    if visible in orgunits.districts():
        return model.district_code == visible
    return model.commune_code == visible


def unit_visible(visible: str, district: str | None, commune: str | None) -> bool:
    """The same rule for one row in memory."""
    if visible == orgunits.PROVINCE_CODE:
        return True
    return visible in (district, commune)
