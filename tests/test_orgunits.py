"""The committed org-unit table is what the register gives; every area-type row names a real place."""

from __future__ import annotations

import csv

from core.orgunits import AREA_TYPES, AREA_TYPES_ALL, TABLE, communes, districts, generate_rows


def test_regenerating_the_table_from_the_register_equals_the_committed_file() -> None:
    with TABLE.open(encoding="utf-8") as f:
        committed = list(csv.DictReader(f))
    assert generate_rows() == committed
    assert len(communes()) == 143 and len(districts()) == 15


def test_every_area_type_row_names_a_place_in_the_register() -> None:
    from vietnamadminunits.database.main import query

    reg = query(
        "SELECT district, districtCode, ward, wardCode FROM admin_units_legacy WHERE provinceCode = '91'"
    )
    wards = {r["wardCode"]: r["ward"] for r in reg}
    district_names = {r["districtCode"]: r["district"] for r in reg}
    with AREA_TYPES.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows
    for row in rows:
        assert row["area_type"] in AREA_TYPES_ALL and row["source"].strip()
        code = row["commune_code"]
        if code.startswith("district:"):
            d = code.split(":", 1)[1]
            assert d in district_names, row
            assert row["commune_name"].startswith(district_names[d]), row
        else:
            assert wards.get(code) == row["commune_name"], row
            assert communes()[code].area_type == row["area_type"]
