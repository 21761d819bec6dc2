"""Facility checklists fill the real compiled facility form: one per commune, deterministic."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from core.orgunits import communes
from core.settings import ROOT
from forms.build import build_all
from forms.instance import instance_to_dict, parse_instance
from simulator.facilities import FORM_ID, generate_facilities
from simulator.fill import fill, load_form


def test_one_checklist_per_commune_filled_on_the_real_form(tmp_path: Path) -> None:
    built = {b.form_id: b for b in build_all(ROOT / "forms" / "xlsforms", tmp_path)}
    template = load_form(built[FORM_ID].xml_bytes())
    visits = generate_facilities(3, date(2026, 11, 20))
    assert len(visits) == len(communes()) == 143
    assert [v.instance_id for v in visits] == [
        v.instance_id for v in generate_facilities(3, date(2026, 11, 20))
    ]
    assert len({v.instance_id for v in visits}) == 143
    filled = fill(template, visits[0])  # type: ignore[arg-type]  # duck-typed like a Household
    inst = parse_instance(filled.xml)
    assert (inst.form_id, inst.instance_id) == (FORM_ID, visits[0].instance_id)
    answers = instance_to_dict(inst.root)
    assert answers["commune"] == visits[0].commune
    assert answers["uses_national_immunisation_system"] in ("yes", "no")
