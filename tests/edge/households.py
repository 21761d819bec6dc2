"""Synthetic household submission docs (contracts §3) for the edge tests and the edge benchmark."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta

from lxml import etree

from core import orgunits

FORM_ID = "household_child_check"
VERSION = "2026112901"
_SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Danh", "Thạch", "Lâm"]
_GIVEN = ["Văn An", "Thị Bình", "Minh Châu", "Thị Dung", "Hoàng Em", "Thị Giang", "Quốc Huy", "Ngọc Lan"]


def instance_xml(rng: random.Random, instance_id: str, commune: str, end: datetime,
                 deprecated_id: str | None = None) -> str:
    c = orgunits.communes()[commune]
    root = etree.Element(FORM_ID, id=FORM_ID, version=VERSION)

    def add(parent: etree._Element, name: str, value: str) -> None:
        etree.SubElement(parent, name).text = value

    start = end - timedelta(minutes=rng.randint(8, 30))
    add(root, "start", start.isoformat(timespec="milliseconds"))
    add(root, "end", end.isoformat(timespec="milliseconds"))
    add(root, "today", end.date().isoformat())
    add(root, "deviceid", f"collect:{rng.getrandbits(48):012x}")
    add(root, "visit_date", end.date().isoformat())
    add(root, "district", c.district_code)
    add(root, "commune", c.code)
    add(root, "hamlet", f"Ấp {rng.randint(1, 9)}")
    add(root, "consent", "yes")
    add(root, "head_name", f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}")
    add(root, "poverty_status", rng.choice(["poor", "near_poor", "neither", "neither", "neither"]))
    add(root, "unfenced_water", rng.choice(["yes", "no"]))
    add(root, "hotline_111_aware", rng.choice(["yes", "no"]))
    add(root, "births_12m", str(rng.choice([0, 0, 0, 1])))
    add(root, "under5_deaths_12m", "0")
    n = rng.choice([0, 1, 1, 2, 2, 3])
    add(root, "children_count", str(n))
    for _ in range(n):
        ch = etree.SubElement(root, "child")
        age = rng.randint(0, 17)
        add(ch, "child_name", f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}")
        add(ch, "sex", rng.choice(["male", "female"]))
        add(ch, "dob", (end.date() - timedelta(days=365 * age + rng.randint(0, 364))).isoformat())
        add(ch, "age_years", str(age))
        add(ch, "ethnicity", rng.choice(["kinh"] * 8 + ["khmer", "hoa"]))
        add(ch, "birth_registered", "yes")
        add(ch, "personal_id", "".join(str(rng.randint(0, 9)) for _ in range(12)))
        add(ch, "attends_school", "yes" if age >= 3 else "")
        add(ch, "orphan_status", "none")
        add(ch, "care_arrangement", "both_parents")
        add(ch, "special_groups", "none")
        add(ch, "at_risk", "no")
        add(ch, "violence_signs", "no")
        add(ch, "play_space_access", rng.choice(["yes", "no"]))
    meta = etree.SubElement(root, "meta")
    add(meta, "instanceID", instance_id)
    if deprecated_id:
        add(meta, "deprecatedID", deprecated_id)
    return etree.tostring(root, encoding="unicode")


def submission_doc(i: int, commune: str, *, seed: int = 1, node: str = "province", area: str | None = None,
                   deprecated_id: str | None = None, end: datetime | None = None) -> dict[str, object]:
    """Household *i* as the sync server stores it: deterministic in (seed, i, commune)."""
    rng = random.Random(f"{seed}:{i}:{commune}")
    instance_id = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    end = end or datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(minutes=17 * i)
    xml = instance_xml(rng, instance_id, commune, end, deprecated_id)
    return {
        "_id": instance_id, "type": "submission", "form_id": FORM_ID, "form_version": VERSION,
        "xml": xml, "xml_sha256": hashlib.sha256(xml.encode()).hexdigest(),
        "deprecated_id": deprecated_id, "submitted_by": f"ctv_{commune}_01", "device_id": None,
        "received_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "received_by": node,
        "area": area or commune, "org_unit": orgunits.area_path(commune), "attachments_expected": [],
    }
