"""Health-station checklists (form `commune_facility_check`): one per commune, deterministic by seed.

Shares are plausible for 2026, not official figures: almost every station records immunisations in the
national system; fewer keep digital child health records; island and border stations lag a little.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.orgunits import communes
from simulator.households import keyed_uuid

FORM_ID = "commune_facility_check"
TZ_OFFSET = timedelta(hours=7)


@dataclass(frozen=True)
class FacilityVisit:
    """The answers of one facility checklist, shaped like a Household so the same filler sends it."""

    instance_id: str
    device_id: str
    district: str
    commune: str
    answers: dict[str, str]
    children: list[dict[str, str]] = field(default_factory=list)
    deprecated_id: str | None = None
    photos: list[str] = field(default_factory=list)


def generate_facilities(seed: int, visit_day: date) -> list[FacilityVisit]:
    """One checklist per legacy commune of Kiên Giang, visited on ``visit_day``."""
    out = []
    for code, c in sorted(communes().items()):
        rng = random.Random(f"facility:{seed}:{code}")
        remote = c.area_type in ("island", "border")
        start = datetime(visit_day.year, visit_day.month, visit_day.day, 8, 0) + timedelta(
            minutes=rng.randint(0, 480)
        )
        end = start + timedelta(minutes=rng.randint(10, 30))
        tz = "+07:00"
        dev = f"collect:facility-{c.district_code}"
        answers = {
            "start": start.isoformat(timespec="milliseconds") + tz,
            "end": end.isoformat(timespec="milliseconds") + tz,
            "today": visit_day.isoformat(),
            "deviceid": dev,
            "visit_date": visit_day.isoformat(),
            "district": c.district_code,
            "commune": code,
            "station_name": f"Trạm Y tế {c.name}",
            "uses_national_immunisation_system": "yes" if rng.random() < (0.93 if remote else 0.99) else "no",
            "digital_child_health_records": "yes" if rng.random() < (0.6 if remote else 0.85) else "no",
            "commune_play_space": "yes" if rng.random() < 0.55 else "no",
            "children_under_1_registered": str(rng.randint(20, 180)),
        }
        rng.getrandbits(128)  # drawn as before (the answers of a seeded checklist stay what they were)
        iid = f"uuid:{keyed_uuid('facility', seed, code, visit_day)}"  # one checklist per commune and day
        out.append(FacilityVisit(iid, dev, c.district_code, code, answers))
    return out
