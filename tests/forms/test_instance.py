"""Instance parsing: identity, flattening, and refusal of entity tricks (untrusted bytes from phones)."""

from __future__ import annotations

import pytest
from lxml import etree

from core.errors import BadRequest
from forms.catalog import BuiltForm
from forms.fields import repeat_names
from forms.instance import instance_to_dict, parse_instance


def household_xml(version: str, children: list[dict[str, str]], *, deprecated: str | None = None) -> bytes:
    root = etree.Element("household_child_check", id="household_child_check", version=version)
    for k, v in (
        ("visit_date", "2026-11-20"),
        ("district", "911"),
        ("commune", "31078"),
        ("hamlet", "Ấp 1"),
        ("gps", ""),
        ("consent", "yes"),
    ):
        etree.SubElement(root, k).text = v
    hh = etree.SubElement(root, "household")
    etree.SubElement(hh, "children_count").text = str(len(children))
    for child in children:
        c = etree.SubElement(hh, "child")
        for k, v in child.items():
            etree.SubElement(c, k).text = v
    meta = etree.SubElement(root, "meta")
    etree.SubElement(meta, "instanceID").text = "uuid:7f1c0c8e-1111-4b7a-9d4e-123456789abc"
    if deprecated:
        etree.SubElement(meta, "deprecatedID").text = deprecated
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def test_identity_and_flattening(built: dict[str, BuiltForm]) -> None:
    b = built["household_child_check"]
    xml = household_xml(
        b.version,
        [
            {
                "child_name": "Nguyễn Văn A",
                "sex": "male",
                "age_months": "30",
                "imm_antigens": "bcg penta1",
                "weight_kg": "",
            }
        ],
        deprecated="uuid:00000000-0000-4000-8000-000000000001",
    )
    inst = parse_instance(xml)
    assert (inst.form_id, inst.version) == ("household_child_check", b.version)
    assert inst.instance_id == "uuid:7f1c0c8e-1111-4b7a-9d4e-123456789abc"
    assert inst.deprecated_id == "uuid:00000000-0000-4000-8000-000000000001"
    d = instance_to_dict(inst.root, repeats=repeat_names(b))
    assert d["commune"] == "31078" and d["children_count"] == "1" and d["hamlet"] == "Ấp 1"
    assert "gps" not in d and "household" not in d and d["instanceID"].startswith("uuid:")
    assert d["child"] == [
        {"child_name": "Nguyễn Văn A", "sex": "male", "age_months": "30", "imm_antigens": "bcg penta1"}
    ]  # a single child is still a list; empty → absent
    two = instance_to_dict(
        parse_instance(household_xml(b.version, [{"sex": "male"}, {"sex": "female"}])).root
    )
    assert [c["sex"] for c in two["child"]] == ["male", "female"]  # type: ignore[index]
    assert parse_instance(household_xml(b.version, [])).deprecated_id is None


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<household_child_check id="household_child_check" version="1"><hamlet>&lol3;</hamlet>
<meta><instanceID>uuid:x</instanceID></meta></household_child_check>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<household_child_check id="household_child_check" version="1"><hamlet>&xxe;</hamlet>
<meta><instanceID>uuid:x</instanceID></meta></household_child_check>"""

PARAM = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<household_child_check id="household_child_check" version="1"><meta><instanceID>uuid:x</instanceID></meta>
</household_child_check>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, EXTERNAL, PARAM], ids=["laughs", "xxe", "param-entity"])
def test_entity_tricks_are_refused(payload: bytes) -> None:
    with pytest.raises(BadRequest) as ei:
        parse_instance(payload)
    assert "DOCTYPE" in ei.value.text("en") or "entit" in ei.value.text("en")
    assert "root:" not in ei.value.text("en")  # nothing of /etc/passwd leaks into the message


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"", "empty"),
        (b"<a><b></a>", "malformed"),
        (b'<f version="1"><meta><instanceID>uuid:x</instanceID></meta></f>', "form id"),
        (b'<f id="f" version="1"><meta/></f>', "instanceID"),
    ],
)
def test_bad_instances_get_a_clear_answer(payload: bytes, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        parse_instance(payload)
