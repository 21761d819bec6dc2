"""Test helpers: forms in the build layout of contracts §2 (pyxform on inline markdown), instances, parts."""

from __future__ import annotations

import hashlib
import json
import uuid
from functools import lru_cache
from pathlib import Path

from lxml import etree
from pyxform.xls2xform import convert

FORM_MD = """
| survey |
| | type | name | label |
| | select_one district | district | Huyện |
| | text | commune | Xã |
| | text | hamlet | Ấp |
| | image | house_photo | Ảnh nhà |
| | begin_repeat | child | Trẻ |
| | text | child_name | Tên |
| | image | imm_card_photo | Phiếu tiêm chủng |
| | end_repeat | | |
| choices |
| | list_name | name | label |
| | district | 911 | Phú Quốc |
| | district | 899 | Rạch Giá |
| settings |
| | form_id | version | form_title |
| | {form_id} | {version} | Kiểm tra hộ gia đình |
"""


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


@lru_cache(maxsize=32)
def _compile(form_id: str, version: str) -> bytes:
    return convert(xlsform=FORM_MD.format(form_id=form_id, version=version), file_type=".md").xform.encode()


def write_form(
    build_dir: Path,
    form_id: str = "hh_test",
    version: str = "2026112901",
    media: dict[str, bytes] | None = None,
    current: bool = True,
) -> bytes:
    """Compile the test form with pyxform, lay it out like `carecheck forms build`; returns form.xml."""
    xml = _compile(form_id, version)
    d = build_dir / form_id / version
    (d / "media").mkdir(parents=True, exist_ok=True)
    (d / "form.xml").write_bytes(xml)
    entries = []
    for name, data in (media or {}).items():
        (d / "media" / name).write_bytes(data)
        entries.append({"filename": name, "hash": md5(data)})
    (d / "form.json").write_text(
        json.dumps(
            {
                "form_id": form_id,
                "version": version,
                "title": "Kiểm tra hộ gia đình",
                "hash": md5(xml),
                "languages": [],
                "n_questions": 6,
                "media": entries,
                "built_at": "2026-11-29T00:00:00Z",
                "source_sha256": "",
            }
        )
    )
    if current:
        (build_dir / form_id / "current").write_text(version)
    return xml


def instance(
    form_id: str = "hh_test",
    version: str = "2026112901",
    instance_id: str | None = None,
    *,
    deprecated_id: str | None = None,
    hamlet: str = "Ấp 1",
    house_photo: str | None = None,
    card_photos: list[str] | None = None,
    district: str = "911",
    commune: str = "31078",
) -> bytes:
    """A submission instance as ODK Collect writes it."""
    root = etree.Element(
        "data",
        id=form_id,
        version=version,
        nsmap={"jr": "http://openrosa.org/javarosa", "orx": "http://openrosa.org/xforms"},
    )
    etree.SubElement(root, "district").text = district
    etree.SubElement(root, "commune").text = commune
    etree.SubElement(root, "hamlet").text = hamlet
    etree.SubElement(root, "house_photo").text = house_photo or ""
    for i, photo in enumerate(card_photos or [""]):
        c = etree.SubElement(root, "child")
        etree.SubElement(c, "child_name").text = f"Trẻ {i}"
        etree.SubElement(c, "imm_card_photo").text = photo
    meta = etree.SubElement(root, "meta")
    etree.SubElement(meta, "instanceID").text = instance_id or f"uuid:{uuid.uuid4()}"
    if deprecated_id:
        etree.SubElement(meta, "deprecatedID").text = deprecated_id
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def parts(
    xml: bytes | None, files: dict[str, bytes] | None = None
) -> list[tuple[str, tuple[str, bytes, str]]]:
    """httpx ``files=`` for an OpenRosa multipart POST (Collect names each part after its file)."""
    out = []
    if xml is not None:
        out.append(("xml_submission_file", ("submission.xml", xml, "text/xml")))
    for name, data in (files or {}).items():
        out.append((name, (name, data, "image/jpeg")))
    return out
