"""Parse a submitted XForm instance safely and flatten it to a dict (docs/contracts.md §2).

Submissions are untrusted bytes from phones. The lxml parser is hardened as defusedxml does it: no entity
expansion, no DTD loading, no network, no huge trees — and any DOCTYPE is refused outright, since an OpenRosa
instance never has one (billion-laughs and external-entity payloads are the reason).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from core.errors import BadRequest
from core.xmlsafe import hardened_parser

# Repeats of our forms; a repeat answered once must still come out as a list. ``forms.fields.repeat_names``
# gives them for any built form.
DEFAULT_REPEATS = frozenset({"child"})


@dataclass(frozen=True)
class Instance:
    form_id: str
    version: str
    instance_id: str
    deprecated_id: str | None
    root: etree._Element


_PARSERS = threading.local()  # one parser per thread (an lxml parser must not be shared between threads)


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = hardened_parser(remove_comments=True)
    return parser


def _bad(vi: str, en: str) -> BadRequest:
    return BadRequest(f"Phiếu gửi lên không hợp lệ: {vi}", f"The submitted record is not valid: {en}")


def parse_xml(xml_bytes: bytes) -> etree._Element:
    """Parse untrusted XML: hardened lxml, DOCTYPE (and so any entity declaration) refused."""
    if not xml_bytes or not xml_bytes.strip():
        raise _bad("tệp XML rỗng.", "the XML file is empty.")
    try:
        tree = etree.fromstring(xml_bytes, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise _bad(f"XML sai cú pháp ({exc.msg}).", f"malformed XML ({exc.msg}).") from exc
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _bad("không được có khai báo DOCTYPE/ENTITY.", "DOCTYPE/ENTITY declarations are refused.")
    root = tree.getroot()
    if next(root.iter(etree.Entity), None) is not None:  # lxml filters by node type in C
        raise _bad("không được dùng thực thể XML.", "XML entities are refused.")
    return root


def _local(el: etree._Element) -> str:
    return str(etree.QName(el).localname)


def _meta_text(root: etree._Element, name: str) -> str | None:
    for meta in root:
        if isinstance(meta.tag, str) and _local(meta) == "meta":
            for child in meta:
                if isinstance(child.tag, str) and _local(child) == name:
                    return (child.text or "").strip() or None
    return None


def parse_instance(xml_bytes: bytes) -> Instance:
    """Identity of a submitted instance: form id and version (root attributes), instanceID, deprecatedID."""
    root = parse_xml(xml_bytes)
    form_id = (root.get("id") or "").strip()
    if not form_id:
        raise _bad(
            "thiếu mã biểu mẫu (thuộc tính id của phần tử gốc).",
            "the form id (root element attribute 'id') is missing.",
        )
    instance_id = _meta_text(root, "instanceID")
    if not instance_id:
        raise _bad("thiếu meta/instanceID.", "meta/instanceID is missing.")
    return Instance(
        form_id=form_id,
        version=(root.get("version") or "").strip(),
        instance_id=instance_id,
        deprecated_id=_meta_text(root, "deprecatedID"),
        root=root,
    )


def instance_to_dict(root: etree._Element, repeats: Iterable[str] | None = None) -> dict[str, object]:
    """Flatten an instance: groups vanish (names are unique in our forms), repeats become lists of dicts.

    Every value is a string; empty answers are absent. ``repeats`` names the repeat elements (default: the
    repeats of our forms); an element that occurs more than once is treated as a repeat anyway.
    """
    reps = frozenset(repeats) if repeats is not None else DEFAULT_REPEATS
    out: dict[str, object] = {}
    _flatten(root, out, reps)
    return out


def _flatten(el: etree._Element, out: dict[str, object], reps: frozenset[str]) -> None:
    # One pass over the element's children (elements only, selected by lxml in C), names taken from the tag
    # string (no QName object per element): this runs for every element of every submission ingested, and
    # most are leaves, so a leaf costs a name, a length and its text. Siblings (for "occurs twice: a repeat")
    # are only looked at when a child has children of its own.
    for c in el.iterchildren("*"):
        tag = c.tag
        name = tag.rpartition("}")[2] if tag[0] == "{" else tag  # local name: {namespace}name → name
        if len(c) == 0 or next(c.iterchildren("*"), None) is None:  # a leaf
            if name in reps:  # an empty repeat instance
                lst = out.setdefault(name, [])
                if isinstance(lst, list):
                    lst.append({})
            else:
                text = c.text
                if text and (text := text.strip()):
                    out[name] = text
            continue
        if name not in reps:
            same = el.iterchildren("{*}" + name)  # siblings of this local name, in any namespace (lxml, in C)
            next(same)
            if next(same, None) is None:
                _flatten(c, out, reps)  # a group: flattened away
                continue
        item: dict[str, object] = {}
        _flatten(c, item, reps)
        lst = out.setdefault(name, [])
        if isinstance(lst, list):
            lst.append(item)
