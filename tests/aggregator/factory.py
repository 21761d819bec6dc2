"""Synthetic submission documents (contracts §2/§3) for ingestion tests: deterministic, built with lxml."""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from lxml import etree

from core.orgunits import communes

FORM = "household_child_check"
VERSION = "2026112901"
GIVEN = [
    "An",
    "Bình",
    "Chi",
    "Dũng",
    "Hoa",
    "Khánh",
    "Lan",
    "Minh",
    "Ngọc",
    "Phúc",
    "Quân",
    "Thảo",
    "Tú",
    "Vy",
]
SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Danh", "Thạch", "Lâm"]


def _leaf(parent: etree._Element, name: str, value: Any) -> None:
    el = etree.SubElement(parent, name)
    if value is not None:
        el.text = str(value)


def household_xml(
    instance_id: str,
    answers: dict[str, Any],
    children: list[dict[str, Any]],
    deprecated_id: str | None = None,
) -> str:
    """An instance shaped like the compiled XForm: groups, a `child` repeat with a nested group, meta."""
    root = etree.Element(FORM, id=FORM, version=VERSION)
    for k in ("start", "end", "today", "deviceid", "visit_date"):
        _leaf(root, k, answers.get(k))
    loc = etree.SubElement(root, "location")
    for k in ("district", "commune", "hamlet", "gps"):
        _leaf(loc, k, answers.get(k))
    _leaf(root, "consent", answers.get("consent", "yes"))
    hh = etree.SubElement(root, "household")
    for k in (
        "head_name",
        "poverty_status",
        "unfenced_water",
        "hotline_111_aware",
        "births_12m",
        "under5_deaths_12m",
        "child_drowning_deaths_12m",
        "children_count",
    ):
        _leaf(hh, k, answers.get(k))
    for c in children:
        rep = etree.SubElement(root, "child")
        grp = etree.SubElement(rep, "child_basic")
        for k, v in c.items():
            _leaf(rep if k in ("weight_kg", "height_cm") else grp, k, v)
    meta = etree.SubElement(root, "meta")
    _leaf(meta, "instanceID", instance_id)
    if deprecated_id:
        _leaf(meta, "deprecatedID", deprecated_id)
    return etree.tostring(root, encoding="unicode")


def submission_doc(
    xml: str,
    instance_id: str,
    *,
    deprecated_id: str | None = None,
    form_id: str = FORM,
    received_at: str = "2026-11-20T03:00:00Z",
    area: str = "91",
) -> dict[str, Any]:
    return {
        "_id": instance_id,
        "type": "submission",
        "form_id": form_id,
        "form_version": VERSION,
        "xml": xml,
        "xml_sha256": hashlib.sha256(xml.encode()).hexdigest(),
        "deprecated_id": deprecated_id,
        "submitted_by": "ctv_test_01",
        "device_id": "collect:test",
        "received_at": received_at,
        "received_by": "province",
        "area": area,
        "org_unit": None,
        "attachments_expected": [],
    }


def personal_id(sex: str, dob: date, rng: random.Random, province: str = "091") -> str:
    d4 = (0 if dob.year < 2000 else 2) + (0 if sex == "male" else 1)
    return f"{province}{d4}{dob.year % 100:02d}{rng.randrange(10**6):06d}"


def child_answers(
    rng: random.Random,
    visit: date,
    *,
    name: str | None = None,
    sex: str | None = None,
    dob: date | None = None,
    with_pid: bool | None = None,
) -> dict[str, Any]:
    sex = sex or rng.choice(["male", "female"])
    dob = dob or visit - timedelta(days=rng.randrange(30, 17 * 365))
    years = (visit - dob).days // 365
    c: dict[str, Any] = {
        "child_name": name or f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)} {rng.choice(GIVEN)}",
        "sex": sex,
        "dob": dob.isoformat(),
        "ethnicity": rng.choice(["kinh"] * 8 + ["khmer", "hoa"]),
        "birth_registered": "yes",
        "orphan_status": "none",
        "care_arrangement": "both_parents",
        "violence_signs": "no",
        "play_space_access": rng.choice(["yes", "no"]),
    }
    if with_pid if with_pid is not None else rng.random() < 0.6:
        c["personal_id"] = personal_id(sex, dob, rng)
    months = (visit.year - dob.year) * 12 + visit.month - dob.month
    if years >= 3:
        c["attends_school"] = "yes" if years < 15 else "no"
        if c["attends_school"] == "yes":
            c["school_level"] = "preschool" if years < 6 else "primary" if years < 11 else "lower_secondary"
    if months < 60:  # near the WHO medians (piecewise), so most children carry no flag
        w = 3.3 + 0.53 * months if months <= 12 else 9.6 + 0.2 * (months - 12)
        h = (
            50 + 2.15 * months
            if months <= 12
            else 75.8 + 1.0 * (months - 12)
            if months <= 24
            else 87.8 + 0.7 * (months - 24)
        )
        c["weight_kg"] = round(w * rng.uniform(0.9, 1.1), 1)
        c["height_cm"] = round(h * rng.uniform(0.97, 1.03), 1)
    if years >= 6:
        c["can_swim"] = rng.choice(["yes", "no"])
    if years >= 5:
        c["work_hours_week"] = rng.choice([0, 0, 0, 2, 5])
        c["chore_hours_week"] = rng.choice([0, 3, 7, 10])
    if years < 16:
        c["special_groups"] = "g04" if rng.random() < 0.02 else "none"
        c["at_risk"] = "no"
    # Injuries from a stream of their own (the child's name and dob), so the other answers drawn from ``rng``
    # stay what they were before the questions existed.
    irng = random.Random(f"injury:{c['child_name']}:{c['dob']}")
    c["injury_12m"] = "yes" if irng.random() < 0.1 else "no"
    if c["injury_12m"] == "yes":
        kinds = ["fall", "traffic", "drowning", "burn fall", "animal", "drowning other"]
        c["injury_type"] = irng.choice(kinds)
    return c


@dataclass
class Batch:
    docs: list[dict[str, Any]] = field(default_factory=list)
    households: int = 0
    children: int = 0


def households(n: int, seed: int = 1, *, start: int = 0) -> Batch:
    """``n`` household submissions (deterministic per seed/index), with 0–4 children each."""
    all_communes = sorted(communes())
    out = Batch()
    for i in range(start, start + n):
        rng = random.Random(f"{seed}:{i}")
        iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        commune = communes()[rng.choice(all_communes)]
        visit = date(2026, 10, 1) + timedelta(days=rng.randrange(55))
        end = datetime.combine(visit, datetime.min.time(), timezone(timedelta(hours=7))) + timedelta(hours=10)
        kids = [child_answers(rng, visit) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4]))]
        answers = {
            "start": end.isoformat(),
            "end": end.isoformat(),
            "today": visit.isoformat(),
            "deviceid": "collect:test",
            "visit_date": visit.isoformat(),
            "district": commune.district_code,
            "commune": commune.code,
            "hamlet": f"Ấp {i % 7 + 1}",
            "head_name": f"{rng.choice(SURNAMES)} Văn {rng.choice(GIVEN)} {i}",
            "poverty_status": "neither",
            "unfenced_water": rng.choice(["yes", "no"]),
            "hotline_111_aware": "yes",
            "births_12m": 0,
            "under5_deaths_12m": 0,
            "child_drowning_deaths_12m": 1 if i % 97 == 5 else 0,
            "children_count": len(kids),
        }
        xml = household_xml(iid, answers, kids)
        received = (end + timedelta(days=rng.randrange(3))).astimezone(UTC).isoformat()
        out.docs.append(submission_doc(xml, iid, area=commune.district_code, received_at=received))
        out.households += 1
        out.children += len(kids)
    return out


def bulk_insert(couch: Any, db: str, docs: list[dict[str, Any]], batch: int = 1000) -> None:
    for i in range(0, len(docs), batch):
        res = couch.bulk_docs(db, docs[i : i + batch])
        bad = [r for r in res if r.get("error")]
        assert not bad, bad[:3]
