"""Org units of Kiên Giang: legacy province → district → commune, the 2025 communes, and area types.

Source of names and codes: the official register shipped by the PyPI package ``vietnamadminunits`` (legacy
63-province table and the 2025 34-province table, plus its converter). The commune → area type table
(island / border / mainland) is data in ``core/data/area_types.csv`` with its source per row; a test checks
every row names a commune or district that exists in the register. ``core/data/orgunits_kien_giang.csv`` is
generated from both (``python -m core.orgunits``) and committed, so runtime needs no converter call; a test
regenerates it and compares.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
TABLE = DATA / "orgunits_kien_giang.csv"
AREA_TYPES = DATA / "area_types.csv"
PROVINCE_CODE = "91"  # Kiên Giang (legacy) and An Giang (2025) share code 91 in the register
PROVINCE_NAME = "Tỉnh Kiên Giang"
PROVINCE_2025_NAME = "Tỉnh An Giang"
AREA_TYPES_ALL = ("island", "border", "mainland")


@dataclass(frozen=True)
class Commune:
    code: str  # legacy commune/ward code (5 digits), as captured by the form
    name: str
    district_code: str  # legacy district code (3 digits)
    district_name: str
    code_2025: str  # the 2025 commune/ward/special-zone it became part of
    name_2025: str
    area_type: str  # island | border | mainland
    lat: float
    lon: float


@dataclass(frozen=True)
class District:
    code: str
    name: str


def generate_rows() -> list[dict[str, str]]:
    """Build the table from the register (vietnamadminunits) and area_types.csv."""
    from vietnamadminunits import convert_address
    from vietnamadminunits.database.main import query

    overrides: dict[str, str] = {}
    with AREA_TYPES.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            overrides[row["commune_code"]] = row["area_type"]
    rows = query(
        "SELECT district, districtCode, ward, wardCode, wardLat, wardLon FROM admin_units_legacy "
        f"WHERE provinceCode = '{PROVINCE_CODE}' ORDER BY districtCode, wardCode"
    )
    out = []
    for r in rows:
        new = convert_address(f"{r['ward']}, {r['district']}, {PROVINCE_NAME}")
        area = overrides.get(r["wardCode"]) or overrides.get(f"district:{r['districtCode']}") or "mainland"
        out.append(
            {
                "commune_code": r["wardCode"],
                "commune_name": r["ward"],
                "district_code": r["districtCode"],
                "district_name": r["district"],
                "commune_2025_code": new.ward_code or "",
                "commune_2025_name": new.ward or "",
                "area_type": area,
                "lat": f"{r['wardLat']:.5f}",
                "lon": f"{r['wardLon']:.5f}",
            }
        )
    return out


def write_table(path: Path = TABLE) -> None:
    rows = generate_rows()
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@lru_cache
def communes() -> dict[str, Commune]:
    """Legacy commune code → Commune (143 for Kiên Giang)."""
    with TABLE.open(encoding="utf-8") as f:
        return {
            r["commune_code"]: Commune(
                code=r["commune_code"],
                name=r["commune_name"],
                district_code=r["district_code"],
                district_name=r["district_name"],
                code_2025=r["commune_2025_code"],
                name_2025=r["commune_2025_name"],
                area_type=r["area_type"],
                lat=float(r["lat"]),
                lon=float(r["lon"]),
            )
            for r in csv.DictReader(f)
        }


@lru_cache
def districts() -> dict[str, District]:
    """Legacy district code → District (15 for Kiên Giang)."""
    return {c.district_code: District(c.district_code, c.district_name) for c in communes().values()}


def communes_2025() -> dict[str, str]:
    """2025 commune code → name, for the communes that legacy Kiên Giang communes became part of."""
    return {c.code_2025: c.name_2025 for c in communes().values()}


def area_path(commune_code: str) -> list[str]:
    """The org-unit path stored at capture time: [province, legacy district, legacy commune]."""
    c = communes()[commune_code]
    return [PROVINCE_CODE, c.district_code, c.code]


def covers(area_code: str | None, commune_code: str) -> bool:
    """Whether an account's area (province "91", legacy district or legacy commune code) covers a commune.

    2025 codes are not accepted as account areas: some equal a different legacy commune's code (30742).
    """
    if not area_code or area_code == PROVINCE_CODE:
        return True
    c = communes().get(commune_code)
    if c is None:
        return False
    return area_code in (c.district_code, c.code)



def area_codes(area: str) -> list[str]:
    """The account-area codes inside ``area``: itself and, for a legacy district, its communes."""
    return [area] + sorted(c.code for c in communes().values() if c.district_code == area)


def may_see(visible: str, level: str, unit: str, hierarchy: str = "legacy") -> bool:
    """THE access rule: whether a reader who sees ``visible`` (91, a legacy district or commune) may read the
    org unit ``unit`` at ``level`` (province | district | commune) of ``hierarchy`` (legacy | 2025).

    Every route, report and export that shows figures of an org unit asks this function (a structural test
    checks that they do). A 2025 commune may merge legacy communes of several districts: all of them must be
    the reader's.
    """
    if visible == PROVINCE_CODE:
        return True
    if level == "province":
        return False
    if level == "district":
        return unit == visible
    if hierarchy == "2025":
        parts = [c.code for c in communes().values() if c.code_2025 == unit]
        return bool(parts) and all(covers(visible, code) for code in parts)
    return covers(visible, unit)


if __name__ == "__main__":
    write_table()
    print(f"wrote {TABLE} ({len(communes())} communes)")
