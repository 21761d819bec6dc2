"""XPath checks on the compiled XForms: skip logic, constraints, repeat count, admin units, dictionary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from forms.catalog import BuiltForm
from forms.fields import FormField, form_fields, repeat_names

NS = {
    "h": "http://www.w3.org/1999/xhtml",
    "x": "http://www.w3.org/2002/xforms",
    "jr": "http://openrosa.org/javarosa",
}
HH = "/household_child_check"
CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def xform(b: BuiltForm) -> etree._Element:
    return etree.fromstring(b.xml_bytes())


def bind(root: etree._Element, name: str) -> etree._Element:
    found = [b for b in root.iterfind(".//x:bind", NS) if b.get("nodeset", "").rsplit("/", 1)[-1] == name]
    assert len(found) == 1, name
    return found[0]


def squash(expr: str | None) -> str:
    return " ".join((expr or "").split())


@pytest.fixture(scope="module")
def hh(built: dict[str, BuiltForm]) -> etree._Element:
    return xform(built["household_child_check"])


def test_instance_root_carries_form_id_version_and_meta(built: dict[str, BuiltForm]) -> None:
    for b in built.values():
        root = xform(b)
        inst = root.find("h:head/x:model/x:instance", NS)[0]  # type: ignore[index]
        assert etree.QName(inst).localname == b.form_id
        assert inst.get("id") == b.form_id and inst.get("version") == b.version
        assert inst.find("x:meta/x:instanceID", NS) is not None
        assert bind(root, "instanceID").get("{http://openrosa.org/javarosa}preload") == "uid"


def test_anthropometry_only_under_five(hh: etree._Element) -> None:
    for name, lo, hi in (("weight_kg", "1", "40"), ("height_cm", "40", "130")):
        b = bind(hh, name)
        assert re.fullmatch(r"\.\./age_months < 60", squash(b.get("relevant")))
        assert squash(b.get("constraint")) == f". >= {lo} and . <= {hi}"
        assert b.get("type") == "decimal"


def test_identity_and_dates(hh: etree._Element) -> None:
    assert bind(hh, "personal_id").get("constraint") == "regex(., '^[0-9]{12}$')"
    assert bind(hh, "personal_id").get("required") is None
    # One age rule (core.ages): completed calendar months from the date pieces, never a count of days.
    months = (
        "(format-date( {v} , '%Y') - format-date({d}, '%Y')) * 12 + format-date( {v} , '%n') - "
        "format-date({d}, '%n') - if(format-date( {v} , '%e') < format-date({d}, '%e'), 1, 0)"
    )
    v = f"{HH}/visit_date"
    dob = squash(bind(hh, "dob").get("constraint"))
    assert dob == f". <= today() and . <= {v} and " + months.format(v=v, d=".") + " < 216"
    assert squash(bind(hh, "visit_date").get("constraint")) == ". <= today()"
    assert squash(bind(hh, "age_months").get("calculate")) == (
        f"if( ../dob = '' or {v} = '' or ../dob > {v} , '', " + months.format(v=v, d=" ../dob ") + ")"
    )
    assert (
        squash(bind(hh, "age_years").get("calculate"))
        == "if( ../age_months = '', '', int( ../age_months div 12))"
    )
    for b in hh.iterfind(".//x:bind", NS):
        assert "decimal-date-time" not in (b.get("calculate") or "") + (b.get("constraint") or "")


def test_repeat_count_and_consent_gating(hh: etree._Element, built: dict[str, BuiltForm]) -> None:
    repeat = hh.find(".//x:repeat", NS)
    assert repeat is not None and repeat.get("nodeset") == f"{HH}/household/child"
    assert squash(repeat.get("{http://openrosa.org/javarosa}count")) == f"{HH}/household/children_count"
    # pyxform writes a first child instance into the model; without this relevance the engine would walk a
    # household with 0 children through child 1 (tests/forms/test_engine.py shows it does not).
    assert squash(bind(hh, "child").get("relevant")) == f"{HH}/household/children_count > 0"
    assert squash(bind(hh, "children_count").get("constraint")) == ". >= 0 and . <= 15"
    assert squash(bind(hh, "household").get("relevant")) == f"{HH}/consent = 'yes'"
    # consent = no ends the visit: every field after consent is inside the gated group (or the refusal note).
    fields = [f.name for f in form_fields(built["household_child_check"])]
    after = fields[fields.index("consent") + 1 :]
    paths = {f.name: f.path for f in form_fields(built["household_child_check"])}
    for name in after:
        assert name in ("consent_refused_note", "instanceID") or paths[name].startswith(f"{HH}/household/"), (
            name
        )
    assert squash(bind(hh, "consent_refused_note").get("relevant")) == f"{HH}/consent = 'no'"


def test_skip_logic_of_the_child_questions(hh: etree._Element) -> None:
    expected = {
        "attends_school": "../age_years >= 3",
        "school_level": "../attends_school = 'yes'",
        "imm_card_seen": "../age_months < 24",
        "imm_card_photo": "../imm_card_seen = 'yes'",
        "imm_antigens": "../imm_card_seen = 'yes'",
        "can_swim": "../age_years >= 6",
        "functional_difficulty": "../age_years >= 2",
        "work_hours_week": "../age_years >= 5",
        "chore_hours_week": "../age_years >= 5",
        "special_groups": "../age_years < 16",
        "at_risk": "../age_years < 16",
        "referred": "../violence_signs = 'yes'",
        "referred_within_24h": "../referred = 'yes'",
        "support_received": "../special_groups != '' and not(selected( ../special_groups , 'none'))",
        "injury_type": "../injury_12m = 'yes'",
    }
    for name, rel in expected.items():
        assert squash(bind(hh, name).get("relevant")) == rel, name
    assert (
        squash(bind(hh, "special_groups").get("constraint"))
        == "not(selected(., 'none') and count-selected(.) > 1)"
    )
    for name in ("work_hours_week", "chore_hours_week"):
        assert squash(bind(hh, name).get("constraint")) == ". >= 0 and . <= 100"


def test_injury_questions(hh: etree._Element, built: dict[str, BuiltForm]) -> None:
    """Plan II.2 injury events: injury_12m for every child, the kind after a yes; drowning deaths."""
    fields = {f.name: f for f in form_fields(built["household_child_check"])}
    injury, kind, deaths = fields["injury_12m"], fields["injury_type"], fields["child_drowning_deaths_12m"]
    assert injury.type == "select_one" and injury.choices == ["yes", "no"] and injury.required
    assert injury.repeat == f"{HH}/household/child" and bind(hh, "injury_12m").get("relevant") is None
    assert kind.type == "select_multiple" and kind.required and kind.repeat == f"{HH}/household/child"
    assert kind.choices == ["drowning", "traffic", "fall", "burn", "animal", "poisoning", "other"]
    assert squash(bind(hh, "injury_type").get("relevant")) == "../injury_12m = 'yes'"
    assert deaths.type == "integer" and deaths.required and deaths.repeat is None
    assert deaths.path == f"{HH}/household/child_drowning_deaths_12m"
    assert squash(bind(hh, "child_drowning_deaths_12m").get("constraint")) == ". >= 0 and . <= 10"
    order = list(fields)
    assert (
        order.index("under5_deaths_12m")
        < order.index("child_drowning_deaths_12m")
        < order.index("children_count")
    )
    labels = {
        t.getparent().get("lang"): t.findtext("x:value", namespaces=NS)
        for t in hh.iterfind(
            f".//x:itext/x:translation/x:text[@id='{HH}/household/child/injury_12m:label']", NS
        )
    }
    assert labels["Tiếng Việt (vi)"].startswith("Trong 12 tháng qua, trẻ có bị tai nạn, thương tích")
    assert labels["English (en)"].startswith("In the last 12 months, did this child have an injury")
    drowning = {
        t.getparent().get("lang"): t.findtext("x:value", namespaces=NS)
        for t in hh.iterfind(".//x:itext/x:translation/x:text[@id='injury_type-0']", NS)
    }
    assert drowning == {"Tiếng Việt (vi)": "Đuối nước", "English (en)": "Drowning or near-drowning",
                        "ខ្មែរ (km)": "លង់ទឹក ឬស្ទើរលង់ទឹក"}  # fmt: skip


def test_bilingual_messages(hh: etree._Element) -> None:
    b = bind(hh, "personal_id")
    ref = b.get("{http://openrosa.org/javarosa}constraintMsg")
    assert ref and "itext" in ref
    text_id = ref.split("'")[1]
    values = {
        t.getparent().get("lang"): t.findtext("x:value", namespaces=NS)
        for t in hh.iterfind(f".//x:itext/x:translation/x:text[@id='{text_id}']", NS)
    }
    assert values["Tiếng Việt (vi)"] == "Số định danh cá nhân gồm đúng 12 chữ số."
    assert "12 digits" in values["English (en)"]
    default = hh.find(".//x:itext/x:translation[@default='true()']", NS)
    assert default is not None and default.get("lang") == "Tiếng Việt (vi)"


def register_legacy() -> list[dict[str, str]]:
    from vietnamadminunits.database.main import query

    return list(
        query(
            "SELECT district, districtCode, ward, wardCode FROM admin_units_legacy "
            "WHERE provinceCode = '91' ORDER BY districtCode, wardCode"
        )
    )


def test_admin_unit_choices_equal_the_register(built: dict[str, BuiltForm]) -> None:
    reg = register_legacy()
    reg_districts = {r["districtCode"]: r["district"] for r in reg}
    reg_communes = {r["wardCode"]: (r["ward"], r["districtCode"]) for r in reg}
    assert len(reg_districts) == 15 and len(reg_communes) == 143
    for b in built.values():
        root = xform(b)
        f = {x.name: x for x in form_fields(b)}
        assert sorted(f["district"].choices or []) == sorted(reg_districts)
        assert sorted(f["commune"].choices or []) == sorted(reg_communes)
        items = root.findall(".//x:instance[@id='commune']/x:root/x:item", NS)
        assert len(items) == 143
        vi = {
            t.get("id"): t.findtext("x:value", namespaces=NS)
            for t in root.iterfind(".//x:translation[@lang='Tiếng Việt (vi)']/x:text", NS)
        }
        for it in items:
            code = it.findtext("x:name", namespaces=NS)
            name, district = reg_communes[code]
            assert it.findtext("x:district", namespaces=NS) == district
            assert vi[it.findtext("x:itextId", namespaces=NS)] == name
        itemset = root.find(f".//x:select1[@ref='/{b.form_id}/commune']/x:itemset", NS)
        assert itemset is not None
        assert (
            squash(itemset.get("nodeset"))
            == f"instance('commune')/root/item[district= /{b.form_id}/district ]"
        )


def contract_table(form_heading: str) -> dict[str, tuple[str, list[str]]]:
    """name → (type column, choice values in brackets) from the data dictionary in docs/contracts.md §2."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text.split(form_heading, 1)[1].split("\n### ", 1)[0]
    out: dict[str, tuple[str, list[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        values = re.findall(r"`([a-z0-9_]+)`", cells[1]) if "[" in cells[1] else []
        if "…" in cells[1]:  # [`g01`…`g14`,`none`]
            values = [f"g{i:02d}" for i in range(1, 15)] + ["none"]
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            out[name] = (cells[1], values)
    return out


TYPE_WORDS = {
    "date": "date",
    "integer": "integer",
    "decimal": "decimal",
    "text": "text",
    "geopoint": "geopoint",
    "image": "image",
    "calculate": "calculate",
    "select_one": "select_one",
    "select_multiple": "select_multiple",
    "yes_no": "select_one",
}


def test_household_form_matches_the_data_dictionary(built: dict[str, BuiltForm]) -> None:
    fields: dict[str, FormField] = {f.name: f for f in form_fields(built["household_child_check"])}
    table = contract_table("### `household_child_check` question names")
    assert len(table) >= 45
    for name, (typ, values) in table.items():
        assert name in fields, f"{name} is in the contract but not in the form"
        f = fields[name]
        word = next((w for w in TYPE_WORDS if typ.startswith(w)), None)
        if typ == "metadata":
            assert f.type == name
        elif word:
            assert f.type == TYPE_WORDS[word], (name, f.type, typ)
        if values:
            assert f.choices == values, name
        if typ.startswith("yes_no") or "yes_no" in typ.split("[")[0]:
            assert f.choices and set(f.choices) >= {"yes", "no"}, name
    assert repeat_names(built["household_child_check"]) == {"child"}
    in_repeat = {n for n, f in fields.items() if f.repeat}
    assert {"child_name", "dob", "height_cm", "play_space_access"} <= in_repeat
    assert "children_count" not in in_repeat


def test_facility_form_matches_the_contract(built: dict[str, BuiltForm]) -> None:
    fields = {f.name: f for f in form_fields(built["commune_facility_check"])}
    for name in (
        "visit_date",
        "district",
        "commune",
        "station_name",
        "uses_national_immunisation_system",
        "digital_child_health_records",
        "commune_play_space",
        "children_under_1_registered",
    ):
        assert name in fields
    assert fields["uses_national_immunisation_system"].choices == ["yes", "no"]
    assert fields["children_under_1_registered"].type == "integer"
