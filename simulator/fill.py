"""Fill a compiled XForm's primary instance with a household's answers, as ODK Collect would write it."""

from __future__ import annotations

import random
import struct
from copy import deepcopy
from dataclasses import dataclass, field

from lxml import etree

from core.errors import Problem
from core.xmlsafe import hardened_parser
from simulator.households import Household

JR_TEMPLATE = "{http://openrosa.org/javarosa}template"
XF = "http://www.w3.org/2002/xforms"
_PARSER = hardened_parser(remove_blank_text=True)


@dataclass(frozen=True)
class FormTemplate:
    """The primary instance of a compiled form: its root (namespace-free), id, version and repeats."""

    form_id: str
    version: str
    root: etree._Element
    repeats: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Filled:
    """One filled instance: the XML bytes a phone sends and its attachments (name → (content type, bytes))."""

    instance_id: str
    xml: bytes
    attachments: dict[str, tuple[str, bytes]]


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _strip(el: etree._Element) -> etree._Element:
    """A copy without namespaces: Collect serialises the instance without the XForms default namespace."""
    out = etree.Element(_local(el.tag))
    for k, v in el.attrib.items():
        if k == JR_TEMPLATE:
            out.set("template", "")  # marker for us; removed from every clone
        elif not k.startswith("{"):
            out.set(k, v)
    for child in el:
        if isinstance(child.tag, str):
            out.append(_strip(child))
    return out


def load_form(xform: bytes) -> FormTemplate:
    """Parse a compiled XForm (bytes as served) and keep its primary instance as a template."""
    try:
        doc = etree.fromstring(xform, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise Problem(f"Biểu mẫu tải về không đọc được: {exc}",
                      f"The downloaded form is not valid XML: {exc}") from exc
    instances = doc.findall(f".//{{{XF}}}model/{{{XF}}}instance")
    primary = next((i for i in instances if i.get("id") is None), None)
    if primary is None or len(primary) == 0:
        raise Problem("Biểu mẫu không có instance chính.", "The form has no primary instance.")
    root = _strip(primary[0])
    form_id, version = root.get("id"), root.get("version")
    if not form_id:
        raise Problem("Biểu mẫu thiếu thuộc tính id.", "The form's primary instance has no id attribute.")
    repeats = set()
    for el in root.iter():
        if el.get("template") is not None:
            repeats.add(el.tag)
    # Drop the initial non-template copies pyxform writes after each template: we clone per repeat instance.
    for name in repeats:
        for el in list(root.iter(name)):
            if el.get("template") is None:
                el.getparent().remove(el)
    return FormTemplate(form_id=form_id, version=version or "", root=root, repeats=frozenset(repeats))


def _index(scope: etree._Element, repeats: frozenset[str]) -> dict[str, etree._Element]:
    """Question name → element inside ``scope``, not descending into repeats (names are unique per form)."""
    out: dict[str, etree._Element] = {}
    stack = list(scope)
    while stack:
        el = stack.pop()
        if el.tag in repeats:
            continue
        if len(el):
            stack.extend(el)
        else:
            out[el.tag] = el
    return out


def _set(where: dict[str, etree._Element], values: dict[str, str], what: str) -> None:
    for name, value in values.items():
        el = where.get(name)
        if el is None:
            raise Problem(f"Biểu mẫu không có câu hỏi '{name}' ({what}).",
                          f"The form has no question '{name}' ({what}); is the server's form out of date?")
        el.text = value


def fill(form: FormTemplate, hh: Household, *, photo_bytes: int = 20_000, deprecated_id: str | None = None,
         instance_id: str | None = None, repeat: str = "child") -> Filled:
    """The instance XML of one household (non-relevant questions left empty) and its photo attachments."""
    root = deepcopy(form.root)
    template = next(root.iter(repeat), None) if repeat in form.repeats else None
    if hh.children and template is None:
        raise Problem(f"Biểu mẫu {form.form_id} không có nhóm lặp '{repeat}'.",
                      f"Form {form.form_id} has no repeat '{repeat}'.")
    answers = dict(hh.answers)
    _set(_index(root, form.repeats), answers, "household")
    if template is not None:
        parent = template.getparent()
        assert parent is not None
        pos = parent.index(template)
        parent.remove(template)
        for k, child in enumerate(hh.children):
            clone = deepcopy(template)
            del clone.attrib["template"]
            _set(_index(clone, form.repeats), child, f"{repeat} {k + 1}")
            parent.insert(pos + k, clone)
    for el in root.iter():
        if "template" in el.attrib:
            del el.attrib["template"]  # other (empty) repeats: no instances

    iid = instance_id or hh.instance_id
    deprecated_id = deprecated_id or hh.deprecated_id
    meta = root.find("meta")
    if meta is None:
        meta = etree.SubElement(root, "meta")
    inst = meta.find("instanceID")
    if inst is None:
        inst = etree.SubElement(meta, "instanceID")
    inst.text = iid
    if deprecated_id:
        dep = meta.find("deprecatedID")
        if dep is None:
            dep = etree.Element("deprecatedID")
            inst.addnext(dep)
        dep.text = deprecated_id

    rng = random.Random(f"photo:{iid}")
    attachments = {name: ("image/jpeg", jpeg(rng, photo_bytes)) for name in hh.photos}
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return Filled(instance_id=iid, xml=xml, attachments=attachments)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def jpeg(rng: random.Random, size: int = 20_000) -> bytes:
    """A valid baseline JPEG (8×8 grey) padded with comment segments of random bytes to about ``size`` bytes.

    Real photos are what the sizes are about (split uploads, limits), not pixels; a decoder still opens it.
    """
    dqt = _segment(0xFFDB, b"\x00" + bytes([1] * 64))
    sof = _segment(0xFFC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01" + b"\x01\x11\x00")
    one_code = bytes([1] + [0] * 15)  # one Huffman code of length 1 ...
    dht = _segment(0xFFC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\x00")  # ... DC 0, AC EOB
    sos = _segment(0xFFDA, b"\x01\x01\x00\x00\x3f\x00")
    scan = b"\x3f"  # DC difference 0 ('0'), end of block ('0'), padded with ones
    app0 = _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    head = b"\xff\xd8" + app0
    tail = dqt + sof + dht + sos + scan + b"\xff\xd9"
    pad = max(0, size - len(head) - len(tail))
    comments = b""
    while pad > 4:
        n = min(pad - 4, 65533)
        comments += _segment(0xFFFE, rng.randbytes(n))
        pad -= n + 4
    return head + comments + tail
