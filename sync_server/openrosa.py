"""Every byte of OpenRosa XML the sync server reads or writes: formList, manifest, responses, instances.

Specs: https://docs.getodk.org/openrosa-form-list/ , https://docs.getodk.org/openrosa-form-submission/ ,
https://docs.getodk.org/openrosa-http/ . XML is always built with lxml; submitted instances are untrusted and
parsed hardened (no DTD, no entities, no network, no huge trees).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lxml import etree

from core.xmlsafe import hardened_parser
from forms.instance import Instance as Instance  # re-exported: the sync server reads instances through here
from forms.instance import instance_to_dict as instance_to_dict
from forms.instance import parse_instance as parse_instance

NS_RESPONSE = "http://openrosa.org/http/response"
NS_XFORMS_LIST = "http://openrosa.org/xforms/xformsList"
NS_MANIFEST = "http://openrosa.org/xforms/xformsManifest"
NS_XFORMS = "http://www.w3.org/2002/xforms"
NS_ORX = "http://openrosa.org/xforms"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
OPENROSA_VERSION = "1.0"

# A filename an attachment part may carry: a bare name, no path separators, no "..", no control characters.
_SAFE_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


def _parser() -> etree.XMLParser:
    return hardened_parser()


# --- responses we write -------------------------------------------------------------------------------------


@lru_cache(maxsize=256)  # a handful of messages answer every submission; bytes are immutable
def response_xml(message: str, nature: str = "") -> bytes:
    """``<OpenRosaResponse xmlns=…><message nature=…>…</message></OpenRosaResponse>`` as UTF-8 bytes."""
    root = etree.Element(f"{{{NS_RESPONSE}}}OpenRosaResponse", nsmap={None: NS_RESPONSE})
    msg = etree.SubElement(root, f"{{{NS_RESPONSE}}}message")
    if nature:
        msg.set("nature", nature)
    msg.text = message
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class FormEntry:
    """One ``<xform>`` of a formList."""

    form_id: str
    name: str
    version: str
    hash: str
    download_url: str
    manifest_url: str | None = None


def form_list_xml(entries: Iterable[FormEntry]) -> bytes:
    """The formList document (OpenRosa Form List API); ``manifestUrl`` only for forms with media."""
    root = etree.Element(f"{{{NS_XFORMS_LIST}}}xforms", nsmap={None: NS_XFORMS_LIST})
    for e in entries:
        x = etree.SubElement(root, f"{{{NS_XFORMS_LIST}}}xform")
        for tag, value in (
            ("formID", e.form_id),
            ("name", e.name),
            ("version", e.version),
            ("hash", e.hash),
            ("downloadUrl", e.download_url),
            ("manifestUrl", e.manifest_url),
        ):
            if value is not None:
                etree.SubElement(x, f"{{{NS_XFORMS_LIST}}}{tag}").text = value
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class MediaEntry:
    filename: str
    hash: str
    download_url: str


def manifest_xml(media: Iterable[MediaEntry]) -> bytes:
    """The manifest document (OpenRosa Form List API, "Manifest document")."""
    root = etree.Element(f"{{{NS_MANIFEST}}}manifest", nsmap={None: NS_MANIFEST})
    for m in media:
        mf = etree.SubElement(root, f"{{{NS_MANIFEST}}}mediaFile")
        etree.SubElement(mf, f"{{{NS_MANIFEST}}}filename").text = m.filename
        etree.SubElement(mf, f"{{{NS_MANIFEST}}}hash").text = m.hash
        etree.SubElement(mf, f"{{{NS_MANIFEST}}}downloadUrl").text = m.download_url
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- instances we read --------------------------------------------------------------------------------------
# Parsing untrusted instances is the forms package's (forms.instance: hardened lxml, DOCTYPE refused); the
# sync server re-exports it so every byte it reads still goes through this module.


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def binary_paths(form_xml: bytes) -> frozenset[tuple[str, ...]]:
    """Paths (local names below the root) of the form's binary questions: the answers naming attachments."""
    root = etree.fromstring(form_xml, _parser())
    paths = set()
    for bind in root.iter(f"{{{NS_XFORMS}}}bind"):
        if bind.get("type") == "binary":
            parts = [p.split("[")[0].split(":")[-1] for p in (bind.get("nodeset") or "").split("/") if p]
            if len(parts) > 1:
                paths.add(tuple(parts[1:]))
    return frozenset(paths)


def referenced_attachments(root: Any, paths: frozenset[tuple[str, ...]]) -> list[str]:
    """Filenames the instance names in its binary questions, in document order, unique.

    An encrypted submission (xforms-spec "encryption") sends a manifest instead: its ``media/file`` entries
    and ``encryptedXmlFile`` name the ``*.enc`` parts, stored as attachments like any other.
    """
    names: list[str] = []
    if (root.get("encrypted") or "").lower() == "yes":
        for el in root.iter():
            if isinstance(el.tag, str) and _local(el.tag) in ("file", "encryptedXmlFile"):
                text = (el.text or "").strip()
                if text and text not in names:
                    names.append(text)
        return names

    def walk(el: Any, prefix: tuple[str, ...]) -> None:
        for child in el:
            if not isinstance(child.tag, str):
                continue
            p = (*prefix, _local(child.tag))
            if p in paths:
                text = (child.text or "").strip()
                if text and text not in names:
                    names.append(text)
            walk(child, p)

    walk(root, ())
    return names


def safe_attachment_name(name: str) -> bool:
    """True for a bare filename (no directories, no '..', no control characters, no leading '_').

    CouchDB reserves attachment names starting with '_'; phones never produce them.
    """
    return bool(_SAFE_NAME.match(name)) and ".." not in name and not name.startswith(("_", "."))


def first_answer(root: Any, name: str) -> str | None:
    """The first non-empty leaf answer with that local name anywhere in the instance (groups flattened)."""
    for el in root.iter():
        if isinstance(el.tag, str) and _local(el.tag) == name and len(el) == 0 and (el.text or "").strip():
            return str(el.text).strip()
    return None


# --- intake: the stored text of an instance -----------------------------------------------------------------

_NOT_UTF8_DECL = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["'](?!utf-?8["'])""", re.I)
_DECL_ENCODING = re.compile(r"""(<\?xml[^>]*?encoding\s*=\s*)(["'])[^"']*\2""")


@dataclass(frozen=True)
class StoredXml:
    """The instance as stored (contracts §3): UTF-8 text, plus the original bytes' hash and encoding when
    the phone sent another encoding (UTF-16, ISO-8859-1, a BOM)."""

    text: str
    original_encoding: str | None
    original_sha256: str | None


def stored_xml(xml: bytes, root: Any) -> StoredXml:
    """Decode an instance with the encoding it declares (BOM, XML declaration) into the text we store.

    Every reader (API, ingestion, edge, conflicts) parses ``doc["xml"].encode("utf-8")``, so the stored text
    is the instance re-encoded as UTF-8 with its declaration saying so; the characters are exactly those the
    phone sent (lxml already decoded them with the declared encoding to give ``root``). Plain UTF-8 without a
    BOM is stored byte for byte.
    """
    import hashlib

    if not xml.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        try:
            text = xml.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and not _NOT_UTF8_DECL.match(text):
            return StoredXml(text, None, None)
    encoding = root.getroottree().docinfo.encoding or "UTF-8"
    try:
        text = xml.decode(_codec(encoding, xml))
    except (LookupError, UnicodeDecodeError) as exc:
        from core.errors import BadRequest

        raise BadRequest(
            f"Phiếu khai báo mã hoá {encoding} nhưng nội dung không đúng mã hoá đó.",
            f"The submission declares encoding {encoding} but its bytes are not in that encoding.",
            code="encoding_mismatch",
        ) from exc
    text = text.lstrip("\ufeff")
    text = _DECL_ENCODING.sub(lambda m: f"{m.group(1)}{m.group(2)}UTF-8{m.group(2)}", text, count=1)
    return StoredXml(text, encoding, hashlib.sha256(xml).hexdigest())


def _codec(encoding: str, xml: bytes) -> str:
    """Python's codec for what lxml detected; UTF-16 with a BOM lets the codec read the byte order."""
    e = encoding.lower().replace("_", "-")
    if e in ("utf-16", "utf-16le", "utf-16be") and xml.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if e in ("utf-8",) and xml.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    return e
