"""Compile XLSForms to XForms (pyxform), check them with ODK Validate, and write the build output atomically.

Pipeline per source: read (pyxform's reader) → canonical cell values → version → pyxform → form.xml →
ODK Validate → form.json. All sources are prepared in a staging directory first; only when every one compiled
and validated are the new version directories renamed into place and ``current`` switched. A failed build
leaves the previous good build untouched and nothing half-built. Layout: docs/contracts.md §2; version rule:
forms/README.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from core.errors import FormBuildError
from forms import enketo
from forms.catalog import BuiltForm, load_built
from forms.translations import merge_translations

SOURCE_SUFFIXES = (".xlsx", ".xls", ".md")
VERSION_LENGTH = 10
VALIDATE_TIMEOUT_S = 120
_SHEETS = ("survey", "choices", "settings", "external_choices", "entities", "osm")
_XF = "http://www.w3.org/2002/xforms"
_CONTROLS = ("input", "select1", "select", "upload", "range", "rank", "trigger")
_ROW_MSG = re.compile(r"^\[row : (\d+)\]\s*(?:On the '([^']+)' sheet,\s*)?(.*)$", re.S)


@dataclass
class _Prepared:
    form_id: str
    version: str
    staged: Path  # the staged <version> directory, complete


def odk_validate_jar() -> Path:
    import pyxform

    return Path(pyxform.__file__).parent / "validators" / "odk_validate" / "bin" / "ODK_Validate.jar"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _pyxform_error(source: str, exc: Exception) -> FormBuildError:
    """pyxform's message, prefixed with the file name and, when pyxform gives them, the sheet and row."""
    msg = str(exc).strip()
    m = _ROW_MSG.match(msg)
    if m:
        row, sheet, rest = m.groups()
        where = f"{sheet or 'survey'} row {row}"
        msg = f"{where}: {rest[:1].upper()}{rest[1:]}"
    line = f"{source}: {_one_line(msg)}"
    return FormBuildError(line, line)


def source_files(src_dir: Path) -> list[Path]:
    if not src_dir.is_dir():
        raise FormBuildError(
            f"Không tìm thấy thư mục biểu mẫu nguồn {src_dir}.", f"Form source directory {src_dir} not found."
        )
    return sorted(
        p
        for p in src_dir.iterdir()
        if p.is_file() and p.suffix.lower() in SOURCE_SUFFIXES and not p.name.startswith(("~$", "."))
    )


def _canonical(workbook: Any, media: list[Path]) -> str:
    """Cell values of every XLSForm sheet (not the file bytes, which change on each save) + media hashes."""
    data: dict[str, Any] = {
        s: [{k: v for k, v in row.items() if v not in (None, "")} for row in (getattr(workbook, s) or [])]
        for s in _SHEETS
    }
    data["media"] = [[p.name, hashlib.sha256(p.read_bytes()).hexdigest()] for p in media]
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def _media_sources(path: Path) -> list[Path]:
    """Media the form references live beside the source in ``<stem>-media/`` (the ODK convention)."""
    d = path.parent / f"{path.stem}-media"
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []


def run_odk_validate(xml_path: Path, source: str) -> None:
    """ODK Validate (JavaRosa, the engine of ODK Collect) on the exact bytes we will serve."""
    java = shutil.which("java")
    if java is None:
        raise FormBuildError(
            f"{source}: cần Java để kiểm tra biểu mẫu bằng ODK Validate; hãy cài Java 17 "
            "(apt-get install openjdk-17-jre-headless).",
            f"{source}: Java is needed to check forms with ODK Validate; install Java 17 "
            "(apt-get install openjdk-17-jre-headless).",
        )
    try:
        r = subprocess.run(
            [java, "-Djava.awt.headless=true", "-jar", str(odk_validate_jar()), str(xml_path)],
            capture_output=True,
            text=True,
            timeout=VALIDATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FormBuildError(
            f"{source}: ODK Validate quá {VALIDATE_TIMEOUT_S} giây.",
            f"{source}: ODK Validate took longer than {VALIDATE_TIMEOUT_S} s.",
        ) from exc
    if r.returncode != 0 or "Xform is valid" not in r.stdout + r.stderr:
        from pyxform.validators.error_cleaner import ErrorCleaner

        lines = [ln.strip() for ln in ErrorCleaner.odk_validate(r.stderr or r.stdout).splitlines()]
        noise = ("The following files failed validation", "Result: Invalid", ">> XForm is invalid", "${")
        detail = (
            "; ".join(ln.lstrip(": ") for ln in lines if ln and not ln.startswith(noise)) or "invalid XForm"
        )
        line = f"{source}: ODK Validate: {_one_line(detail)}"
        raise FormBuildError(line, line)


def _describe(xml: bytes) -> tuple[str, list[str], int]:
    """Title, languages and number of questions of a compiled XForm."""
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    ns = {"h": "http://www.w3.org/1999/xhtml", "x": _XF}
    title = root.findtext("h:head/h:title", default="", namespaces=ns)
    langs = [t.get("lang", "") for t in root.iterfind("h:head/x:model/x:itext/x:translation", ns)]
    readonly = {
        b.get("nodeset") for b in root.iterfind("h:head/x:model/x:bind", ns) if b.get("readonly") == "true()"
    }
    body = root.find("h:body", ns)
    n = 0
    if body is not None:
        for el in body.iter():
            tag = etree.QName(el).localname if isinstance(el.tag, str) else ""
            if tag in _CONTROLS and el.get("ref") not in readonly:
                n += 1
    return title, langs, n


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()  # noqa: S324 - OpenRosa's hash is md5 by spec


def _prepare(path: Path, out_dir: Path, staging: Path) -> _Prepared | BuiltForm:
    """Compile one source into ``staging``; return the existing BuiltForm if this version is built."""
    from pyxform.builder import create_survey_element_from_dict
    from pyxform.errors import PyXFormError
    from pyxform.utils import external_choices_to_csv, has_external_choices
    from pyxform.xls2json import workbook_to_json
    from pyxform.xls2json_backends import get_xlsform

    source = path.name
    try:
        workbook = get_xlsform(xlsform=path)
    except (PyXFormError, ValueError, KeyError, OSError) as exc:
        raise _pyxform_error(source, exc) from exc
    workbook, translations = merge_translations(path, workbook)  # translations/<stem>.<lang>.csv, if any
    settings = [dict(r) for r in (workbook.settings or [])] or [{}]
    if settings[0].get("version"):
        raise FormBuildError(
            f"{source}: settings: hãy xóa cột 'version' — phiên bản do bước biên dịch tính từ nội dung.",
            f"{source}: settings: remove the 'version' column — the build derives it from the content.",
        )
    form_id = str(settings[0].get("form_id") or settings[0].get("id_string") or path.stem).strip()
    media = _media_sources(path)
    canonical = _canonical(workbook, media)
    source_sha = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    version = source_sha[:VERSION_LENGTH]

    target = out_dir / form_id / version
    if (target / "form.json").is_file() and (target / "form.xml").is_file():
        if not (target / enketo.ENKETO_FILE).is_file() and enketo.unavailable_reason() is None:
            enketo.transform([target / "form.xml"], source)  # built before the web app existed: derive it
        return load_built(target)  # unchanged source: nothing to do, keep the bytes phones already have

    settings[0]["version"] = version
    header = [dict(h) for h in (workbook.settings_header or [])] or [{}]
    header[0]["version"] = None
    warnings: list[str] = []
    try:
        pyxform_data = workbook_to_json(
            workbook_dict=dataclasses.replace(workbook, settings=settings, settings_header=header),
            form_name=form_id,
            fallback_form_name=workbook.fallback_form_name,
            default_language=None,
            warnings=warnings,
        )
        itemsets = (
            external_choices_to_csv(workbook_dict=workbook)
            if has_external_choices(json_struct=pyxform_data)
            else None
        )
        xform = create_survey_element_from_dict(pyxform_data).to_xml(
            validate=False, pretty_print=True, warnings=warnings
        )
    except Exception as exc:  # noqa: BLE001 - any pyxform failure is a build error for this file, one line
        raise _pyxform_error(source, exc) from exc

    staged = staging / form_id / version
    (staged / "media").mkdir(parents=True)
    xml_bytes = xform.encode("utf-8")
    (staged / "form.xml").write_bytes(xml_bytes)
    if itemsets is not None:
        (staged / "media" / "itemsets.csv").write_bytes(itemsets.encode("utf-8"))
    for m in media:
        shutil.copyfile(m, staged / "media" / m.name)
    run_odk_validate(staged / "form.xml", source)
    if enketo.unavailable_reason() is None:
        enketo.transform([staged / "form.xml"], source)  # the web app's form, from the bytes served
    else:
        warnings.append(f"Enketo (web app) form not prepared: {enketo.unavailable_reason()}.")

    title, languages, n_questions = _describe(xml_bytes)
    meta = {
        "form_id": form_id,
        "version": version,
        "title": title,
        "hash": _md5(xml_bytes),
        "languages": languages,
        "n_questions": n_questions,
        "media": [
            {"filename": p.name, "hash": _md5(p.read_bytes())} for p in sorted((staged / "media").iterdir())
        ],
        "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_sha256": source_sha,
        "source": source,
        "warnings": [_one_line(w) for w in warnings],
        "translations": translations,
    }
    (staged / "form.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return _Prepared(form_id, version, staged)


def _write_current(form_dir: Path, version: str) -> None:
    current = form_dir / "current"
    if current.is_file() and current.read_text(encoding="utf-8").strip() == version:
        return
    fd, tmp = tempfile.mkstemp(dir=form_dir, prefix=".current-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(version + "\n")
    os.replace(tmp, current)


def build_sources(paths: list[Path], out_dir: Path | str) -> list[BuiltForm]:
    """Build the given sources all-or-nothing into ``out_dir``."""
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".staging-"))
    try:
        prepared: list[_Prepared | BuiltForm] = []
        seen: dict[str, str] = {}
        for path in paths:
            p = _prepare(path, out_dir, staging)
            if p.form_id in seen:
                raise FormBuildError(
                    f"{path.name}: form_id '{p.form_id}' trùng với {seen[p.form_id]}.",
                    f"{path.name}: form_id '{p.form_id}' is also used by {seen[p.form_id]}.",
                )
            seen[p.form_id] = path.name
            prepared.append(p)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    try:
        built: list[BuiltForm] = []
        for p in prepared:
            if isinstance(p, _Prepared):
                target = out_dir / p.form_id / p.version
                target.parent.mkdir(exist_ok=True)
                if target.exists():  # another build won the race with the same content
                    shutil.rmtree(p.staged)
                else:
                    os.rename(p.staged, target)
                _write_current(target.parent, p.version)
                built.append(load_built(target))
            else:
                _write_current(out_dir / p.form_id, p.version)
                built.append(p)
        return built
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_one(path: Path | str, out_dir: Path | str) -> BuiltForm:
    """Build one XLSForm (.xlsx, .xls or XLSForm markdown .md) into ``out_dir``."""
    path = Path(path)
    if not path.is_file():
        raise FormBuildError(f"Không tìm thấy tệp biểu mẫu {path}.", f"Form source {path} not found.")
    return build_sources([path], out_dir)[0]


def build_all(src_dir: Path | str, out_dir: Path | str) -> list[BuiltForm]:
    """Build every XLSForm in ``src_dir`` into ``out_dir``; all or nothing."""
    paths = source_files(Path(src_dir))
    if not paths:
        raise FormBuildError(
            f"Thư mục {src_dir} không có biểu mẫu XLSForm nào (.xlsx, .xls, .md).",
            f"No XLSForm (.xlsx, .xls, .md) in {src_dir}.",
        )
    return build_sources(paths, out_dir)
