"""Describe a built form's questions from its compiled XForm (binds + body): name, type, repeat, choices."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from forms.catalog import BuiltForm

NS = {
    "h": "http://www.w3.org/1999/xhtml",
    "x": "http://www.w3.org/2002/xforms",
    "jr": "http://openrosa.org/javarosa",
    "odk": "http://www.opendatakit.org/xforms",
}
_JR = "{http://openrosa.org/javarosa}"
_BIND_TYPES = {
    "string": "text",
    "int": "integer",
    "decimal": "decimal",
    "date": "date",
    "dateTime": "dateTime",
    "time": "time",
    "geopoint": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "binary": "binary",
    "barcode": "barcode",
}
_PRELOADS = {"start", "end", "today", "deviceid", "uid"}


@dataclass(frozen=True)
class FormField:
    """One node of the form's primary instance that carries a value (questions, calculates, metadata)."""

    name: str
    path: str  # absolute instance path, e.g. /household_child_check/household/child/sex
    type: str  # XLSForm-like: text, integer, decimal, date, select_one, select_multiple,
    # image, calculate, note, start, end, today, deviceid, uid, geopoint, …
    repeat: str | None  # path of the innermost enclosing repeat, or None
    choices: list[str] | None  # choice values for select_one / select_multiple
    choice_list: str | None  # the secondary instance (XLSForm list name) the choices come from
    required: bool
    relevant: str | None
    constraint: str | None
    calculate: str | None


def _text(el: etree._Element | None) -> str:
    return "" if el is None else "".join(el.itertext()).strip()


def form_fields(built: BuiltForm | bytes) -> list[FormField]:
    """Every value-carrying node of the form, in instance order (groups and repeats themselves excluded)."""
    xml = built if isinstance(built, bytes) else built.xml_bytes()
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    model = root.find("h:head/x:model", NS)
    body = root.find("h:body", NS)
    if model is None or body is None:
        return []
    binds = {b.get("nodeset"): b for b in model.iterfind("x:bind", NS)}
    instances = {i.get("id"): i for i in model.iterfind("x:instance", NS)}
    primary = next(i for i in model.iterfind("x:instance", NS) if i.get("id") is None)
    data = next(c for c in primary if isinstance(c.tag, str))

    controls: dict[str, etree._Element] = {}
    repeats: list[str] = []
    for el in body.iter():
        if not isinstance(el.tag, str):
            continue
        tag = etree.QName(el).localname
        if tag == "repeat":
            repeats.append(el.get("nodeset", ""))
        elif el.get("ref"):
            controls[el.get("ref", "")] = el

    def choices_of(ctrl: etree._Element) -> tuple[list[str] | None, str | None]:
        itemset = ctrl.find("x:itemset", NS)
        if itemset is not None:
            nodeset = itemset.get("nodeset", "")
            list_id = nodeset.split("instance('", 1)[1].split("'", 1)[0] if "instance('" in nodeset else None
            inst = instances.get(list_id)
            vref = itemset.find("x:value", NS)
            vname = vref.get("ref", "name") if vref is not None else "name"
            values = [] if inst is None else [_text(it.find(f"{{*}}{vname}")) for it in inst.iter("{*}item")]
            return values, list_id
        return [_text(it.find("x:value", NS)) for it in ctrl.iterfind("x:item", NS)], None

    out: list[FormField] = []
    seen: set[str] = set()

    def walk(el: etree._Element, path: str) -> None:
        for c in el:
            if not isinstance(c.tag, str):
                continue
            p = f"{path}/{etree.QName(c).localname}"
            if p in seen:  # pyxform writes a repeat's jr:template and a first instance: describe it once
                continue
            seen.add(p)
            if p in repeats or any(isinstance(g.tag, str) for g in c):
                walk(c, p)
                continue
            out.append(_field(p, binds.get(p), controls.get(p), choices_of, repeats))

    walk(data, f"/{etree.QName(data).localname}")
    return out


def _field(
    path: str,
    bind: etree._Element | None,
    ctrl: etree._Element | None,
    choices_of: object,
    repeats: list[str],
) -> FormField:
    b = bind if bind is not None else etree.Element("bind")
    preload = b.get(f"{_JR}preloadParams") or b.get(f"{_JR}preload")
    typ = _BIND_TYPES.get(b.get("type", "string"), b.get("type", "string"))
    choices: list[str] | None = None
    choice_list: str | None = None
    if preload in _PRELOADS:
        typ = preload
    elif b.get("calculate") is not None and ctrl is None:
        typ = "calculate"
    elif ctrl is not None:
        tag = etree.QName(ctrl).localname
        if tag in ("select1", "select"):
            typ = "select_one" if tag == "select1" else "select_multiple"
            choices, choice_list = choices_of(ctrl)  # type: ignore[operator]
        elif tag == "upload":
            typ = (ctrl.get("mediatype") or "image/*").split("/")[0]
        elif b.get("readonly") == "true()" and tag == "input":
            typ = "note"
    enclosing = [r for r in repeats if path.startswith(r + "/")]
    return FormField(
        name=path.rsplit("/", 1)[1],
        path=path,
        type=typ,
        repeat=max(enclosing, key=len) if enclosing else None,
        choices=choices,
        choice_list=choice_list,
        required=b.get("required") == "true()",
        relevant=_expr(b.get("relevant")),
        constraint=_expr(b.get("constraint")),
        calculate=_expr(b.get("calculate")),
    )


def _expr(value: str | None) -> str | None:
    return " ".join(value.split()) if value else None


def repeat_names(built: BuiltForm | bytes) -> set[str]:
    """Names of the form's repeat elements (for ``forms.instance.instance_to_dict``)."""
    return {f.repeat.rsplit("/", 1)[1] for f in form_fields(built) if f.repeat}
