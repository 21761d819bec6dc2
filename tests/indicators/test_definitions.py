"""The YAML definitions: complete, documented, referencing real columns; the README table is up to date."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aggregator import indicators as I
from aggregator.indicators import SOURCES, ConditionError, compile_condition, load, parse_definition
from core.errors import ConfigError

README = Path(I.__file__).parent / "README.md"
GOOD = {
    "code": "x_rate",
    "name": {"vi": "Tỷ lệ x", "en": "X rate"},
    "doc": "What x is.",
    "unit": "percent",
    "kind": "stock",
    "numerator": {"count": "child", "where": "can_swim"},
    "denominator": {"count": "child", "where": "can_swim is not null"},
    "disaggregate": ["sex"],
    "target": {"op": ">", "value": 50, "clause": "Plan II.2", "clause_vi": "Kế hoạch, mục II.2"},
}


def test_at_least_fifteen_indicators_covering_the_plan() -> None:
    defs = load()
    assert len(defs) >= 15
    required = {  # the domain brief's table, clause by clause
        "cedc_rate",
        "cedc_supported",
        "at_risk_share",
        "preschool_age5",
        "ece_36_59m",
        "primary_right_age",
        "lower_secondary_right_age",
        "birth_registration_u5",
        "personal_id_coverage",
        "full_immunisation_12_23m",
        "stunting_u5",
        "underweight_u5",
        "wasting_u5",
        "can_swim_6_15",
        "unfenced_water_households",
        "u5_deaths_per_1000_births",
        "child_labour",
        "orphans_family_care",
        "functional_difficulty",
        "abuse_referred_24h",
        "hotline_111_awareness",
        "play_space_access",
        "stations_national_immunisation",
        "injury_12m_u16",  # II.2 injury events: injuries, drowning events, drowning deaths
        "drowning_events_u16",
        "child_drowning_deaths",
    }
    assert required <= set(defs)
    t = defs["cedc_rate"].target
    assert t == {"op": "<", "value": 0.8, "clause": t["clause"], "clause_vi": t["clause_vi"]}
    # every indicator cites its plan clause in both languages, with or without a figure (rule 9)
    for ind in defs.values():
        assert ind.clause["vi"] and ind.clause["en"] and ind.clause["vi"] != ind.clause["en"], ind.code
    assert defs["primary_right_age"].target["op"] == ">" and defs["primary_right_age"].target["value"] == 91
    assert defs["stations_national_immunisation"].target["value"] == 100
    assert defs["u5_deaths_per_1000_births"].unit == "per_1000"


def test_every_indicator_is_documented_and_complete() -> None:
    for ind in load().values():
        assert len(ind.doc) > 30, f"{ind.code}: doc too short"
        assert ind.name_vi and ind.name_en and ind.name_vi != ind.name_en, ind.code
        assert ind.target is None or ind.target["clause"], ind.code
        assert set(ind.disaggregate) <= set(I.DIMENSIONS)
        ind.numerator.sql(), ind.denominator.sql()  # compiles against the model's columns


def test_readme_lists_every_indicator_with_target_and_clause() -> None:
    text = README.read_text(encoding="utf-8")
    assert I.readme_table() in text, (
        "aggregator/indicators/README.md is stale: python -m aggregator.indicators"
    )
    for ind in load().values():
        assert f"`{ind.code}`" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"doc": ""}, "missing field 'doc'"),
        ({"name": {"vi": "x"}}, "name needs both vi and en"),
        ({"unit": "ratio"}, "unit must be one of"),
        ({"kind": "snapshot"}, "kind must be flow or stock"),
        ({"numerator": {"count": "child", "where": "swims"}}, "unknown column 'swims'"),
        ({"numerator": {"count": "child", "where": "age_years < 'ten'"}}, "wrong type"),
        ({"numerator": {"count": "child", "where": "age_years"}}, "not a yes/no column"),
        ({"numerator": {"count": "child", "where": "can_swim and"}}, "expected"),
        ({"numerator": {"count": "child", "where": "can_swim; drop table x"}}, "cannot read"),
        ({"numerator": {"count": "pets"}}, "unknown table 'pets'"),
        ({"numerator": {"sum": "births_12m", "of": "household"}}, "same table"),
        ({"denominator": None}, "missing field 'denominator'"),
        ({"disaggregate": ["religion"]}, "unknown disaggregation"),
        ({"target": {"op": "<", "value": 1}}, "target needs the plan clause"),
        ({"target": {"op": "<", "value": 1, "clause": "x"}}, "in English and Vietnamese"),
        ({"target": {"op": "~", "value": 1, "clause": "x", "clause_vi": "x"}}, "target op must be one of"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_bad_definitions_are_refused_with_a_clear_message(change: dict, message: str) -> None:
    d = {**GOOD, **change}
    with pytest.raises(ConfigError, match=message) as exc:
        parse_definition({k: v for k, v in d.items() if v is not None}, "test.yaml")
    assert "test.yaml: indicator 'x_rate'" in str(exc.value)


def test_household_indicators_must_be_stocks() -> None:
    """Rule 3: a household counts once per period (its latest visit), never once per visit."""
    d = {
        **GOOD,
        "numerator": {"count": "household", "where": "consent"},
        "denominator": {"count": "household"},
        "disaggregate": [],
    }
    with pytest.raises(ConfigError, match="must be a stock"):
        parse_definition({**d, "kind": "flow"}, "t.yaml")
    assert parse_definition({**d, "kind": "stock"}, "t.yaml").source == "household"


def test_a_bad_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"indicators": [GOOD]}), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"indicators": [GOOD]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="b.yaml: indicator 'x_rate' is also defined in a.yaml"):
        I.load.__wrapped__(tmp_path)
    (tmp_path / "b.yaml").write_text("indicators: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="b.yaml: not valid YAML"):
        I.load.__wrapped__(tmp_path)


def test_condition_language() -> None:
    from sqlalchemy.dialects import sqlite

    src = SOURCES["child"]
    sql = str(
        compile_condition("not (age_years >= 5 or sex in ['male']) and imm_antigens has 'bcg'", src).compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    assert "NOT" in sql and "IN ('male')" in sql and "LIKE '% bcg %'" in sql
    for bad in ("age_years <", "(can_swim", "can_swim can_swim", "sex in 'male'", "age_years has 'x'"):
        with pytest.raises(ConditionError):
            compile_condition(bad, src)


def test_every_indicator_names_its_plan_clause() -> None:
    for ind in load().values():
        assert ind.target and ind.target["clause"].startswith("Plan"), ind.code
