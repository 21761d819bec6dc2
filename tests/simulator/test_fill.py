"""Filled instances of the REAL compiled form: structure, its own skip logic and constraints, photos."""

from __future__ import annotations

import random
import re
from datetime import date
from typing import Any

import pytest
from lxml import etree

from forms.catalog import BuiltForm
from forms.instance import instance_to_dict, parse_instance
from simulator.fill import FormTemplate, fill, jpeg, load_form
from simulator.households import Household, generate

XF = "http://www.w3.org/2002/xforms"
FIRST, LAST = date(2026, 7, 1), date(2026, 9, 30)


def _str(v: Any) -> str:
    if isinstance(v, list):
        return "".join(x if isinstance(x, str) else (x.text or "") for x in v[:1])
    return str(v)


# The few XForms functions the form's relevant/constraint expressions use, for lxml's XPath 1.0 engine.
EXTENSIONS = {
    (None, "selected"): lambda _ctx, values, item: _str(item) in _str(values).split(),
    (None, "count-selected"): lambda _ctx, values: float(len(_str(values).split())),
    (None, "regex"): lambda _ctx, value, pattern: re.search(_str(pattern), _str(value)) is not None,
}


@pytest.fixture(scope="module")
def households() -> list[Household]:
    return generate(600, seed=11, first=FIRST, last=LAST)


@pytest.fixture(scope="module")
def binds(hh_form: BuiltForm) -> list[etree._Element]:
    doc = etree.fromstring(hh_form.xml_bytes())
    return list(doc.iter(f"{{{XF}}}bind"))


def _paths(el: etree._Element, prefix: str = "") -> set[str]:
    here = f"{prefix}/{el.tag}"
    out = {here}
    for c in el:
        out |= _paths(c, here)
    return out


def _check(instance: etree._Element, binds: list[etree._Element]) -> list[str]:
    """Problems of one instance against the form's binds.

    Answers where not relevant, required answers missing, constraints broken (date constraints are left to
    JavaRosa: XPath 1.0 cannot compare dates).
    """
    tree = etree.ElementTree(instance)
    irrelevant: set[etree._Element] = set()
    for b in binds:
        if b.get("relevant"):
            expr = etree.XPath(f"boolean({b.get('relevant')})", extensions=EXTENSIONS)
            for node in tree.xpath(b.get("nodeset")):
                if not expr(node):
                    irrelevant.update(node.iter())
    problems = []
    for b in binds:
        path = b.get("nodeset")
        for node in tree.xpath(path):
            value = (node.text or "").strip()
            if node in irrelevant:
                if value:
                    problems.append(f"{path}={value!r} although not relevant")
                continue
            if b.get("required") == "true()" and not value and len(node) == 0:
                problems.append(f"{path} is required but empty")
            c = b.get("constraint")
            if c and value and "today()" not in c and "decimal-date" not in c:
                if not etree.XPath(f"boolean({c})", extensions=EXTENSIONS)(node):
                    problems.append(f"{path}={value!r} breaks constraint {c}")
    return problems


def test_template_is_the_forms_primary_instance(template: FormTemplate, hh_form: BuiltForm) -> None:
    assert (template.form_id, template.version) == ("household_child_check", hh_form.version)
    assert template.root.tag == "household_child_check"
    assert template.repeats == frozenset({"child"})


def test_instances_follow_the_form(template: FormTemplate, binds: list[etree._Element],
                                   households: list[Household]) -> None:
    allowed = _paths(template.root)
    checked_children = 0
    for h in households:
        filled = fill(template, h, photo_bytes=500)
        root = etree.fromstring(filled.xml)
        assert root.get("id") == "household_child_check" and root.get("version") == template.version
        assert _paths(root) <= allowed, "every element must exist in the form's template"
        assert root.findtext("meta/instanceID") == h.instance_id
        assert len(root.findall(".//child")) == len(h.children)
        assert _check(root, binds) == [], h.index
        # The project's own instance parser reads it back to the generated answers.
        inst = parse_instance(filled.xml)
        assert (inst.form_id, inst.version, inst.instance_id) == (template.form_id, template.version,
                                                                  h.instance_id)
        data = instance_to_dict(inst.root)
        for k, v in h.answers.items():
            assert data[k] == v
        for got, want in zip(data.get("child", []), h.children, strict=True):
            assert got == want
            checked_children += 1
            if int(want["age_months"]) >= 60:
                assert "height_cm" not in got and "weight_kg" not in got
        assert set(filled.attachments) == set(h.photos)
    assert checked_children > 500


def test_a_broken_answer_is_caught_by_the_checker(template: FormTemplate, binds: list[etree._Element],
                                                  households: list[Household]) -> None:
    # The check above must be able to fail: a height for a 7-year-old and a too-heavy child are reported.
    h = next(h for h in households if any(int(c["age_years"]) >= 7 for c in h.children))
    k = next(i for i, c in enumerate(h.children) if int(c["age_years"]) >= 7)
    root = etree.fromstring(fill(template, h).xml)
    root.findall(".//child")[k].find("height_cm").text = "120.5"
    problems = _check(root, binds)
    assert any("height_cm" in p and "not relevant" in p for p in problems)


def test_edits_carry_a_deprecated_id(template: FormTemplate, households: list[Household]) -> None:
    h = households[0]
    edit = fill(template, h, instance_id="uuid:11111111-2222-4333-8444-555555555555",
                deprecated_id=h.instance_id)
    inst = parse_instance(edit.xml)
    assert inst.instance_id == "uuid:11111111-2222-4333-8444-555555555555"
    assert inst.deprecated_id == h.instance_id


def test_same_household_same_bytes(template: FormTemplate) -> None:
    a = generate(30, seed=9, first=FIRST, last=LAST)
    b = generate(30, seed=9, first=FIRST, last=LAST)
    for x, y in zip(a, b, strict=True):
        fx, fy = fill(template, x, photo_bytes=3000), fill(template, y, photo_bytes=3000)
        assert fx.xml == fy.xml and fx.attachments == fy.attachments


def test_photos_are_jpegs_of_the_requested_size() -> None:
    for size in (300, 20_000, 200_000):
        data = jpeg(random.Random(size), size)
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
        assert abs(len(data) - size) <= 4
        # Walk the marker segments to the scan: a decoder finds SOF0, DHT and SOS where they belong.
        i, markers = 2, []
        while data[i] == 0xFF and data[i + 1] != 0xDA:
            markers.append(data[i + 1])
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        assert {0xE0, 0xDB, 0xC0, 0xC4} <= set(markers)


def test_load_form_refuses_what_is_not_a_form() -> None:
    from core.errors import Problem

    with pytest.raises(Problem, match="not valid XML"):
        load_form(b"<h:html")
    with pytest.raises(Problem, match="no primary instance"):
        load_form(b'<h:html xmlns:h="http://www.w3.org/1999/xhtml" xmlns="http://www.w3.org/2002/xforms"/>')
