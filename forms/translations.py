"""Translation sheets: a reviewer-editable CSV per form and language, merged into the XLSForm at build time.

``<src>/translations/<form stem>.<lang>.csv`` (e.g. ``household_child_check.km.csv``), UTF-8, columns:

    sheet, key, column, vi, en, <lang>, status

- ``sheet`` is ``survey`` or ``choices``; ``key`` is the question ``name`` or ``<list_name>/<name>`` of a
  choice; ``column`` is ``label``, ``hint``, ``constraint_message`` or ``required_message``;
- ``vi`` / ``en`` are the source texts the translator saw (the default language and English), ``<lang>`` the
  translation, ``status`` ``draft`` (not yet checked by a native speaker) or ``reviewed``.

A cell already filled in the workbook's own ``<column>::<language name>`` column is kept as it is. The build
(``merge_translations``) adds ``<column>::<language name>`` columns to whatever rows the workbook
has now — the .xlsx files stay the one source of the questions and are never edited by this step. A text
whose Vietnamese source changed since it was translated (``vi`` differs) is *stale* and not used; a text with
no usable translation is shown in Vietnamese (pyxform would print "-") and listed as untranslated in the build
report (``form.json`` → ``translations``). Place-name lists (district, commune) keep their official Vietnamese
names and are not counted. ``carecheck forms translations`` writes or refreshes the sheet (new rows appended,
existing translations and statuses kept).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

TRANSLATED_COLUMNS = ("label", "hint", "constraint_message", "required_message")
LANGUAGE_NAMES = {"km": "ខ្មែរ (km)", "en": "English (en)", "vi": "Tiếng Việt (vi)"}
PLACE_LISTS = ("district", "commune")  # official names from the register, the same in every language
FIELDS = ("sheet", "key", "column", "vi", "en")


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, f"{code} ({code})")


def sheet_path(source: Path, lang: str) -> Path:
    return source.parent / "translations" / f"{source.stem}.{lang}.csv"


def sheet_languages(source: Path) -> list[str]:
    """Language codes that have a translation sheet for this source."""
    d = source.parent / "translations"
    if not d.is_dir():
        return []
    prefix = source.stem + "."
    return sorted(
        p.name[len(prefix) : -len(".csv")]
        for p in d.glob(f"{source.stem}.*.csv")
        if p.name.startswith(prefix)
    )


def _default_language(workbook: Any) -> str:
    settings = (workbook.settings or [{}])[0] if workbook.settings else {}
    return str(settings.get("default_language") or "default")


def _texts(workbook: Any) -> list[tuple[str, str, str, str, str, dict[str, Any]]]:
    """(sheet, key, column, vi, en, row) for every translatable cell with default-language text."""
    vi_name, en_name = _default_language(workbook), LANGUAGE_NAMES["en"]
    out = []
    for sheet in ("survey", "choices"):
        for row in getattr(workbook, sheet) or []:
            if sheet == "survey":
                key = str(row.get("name") or "")
            else:
                key = f"{row.get('list_name') or ''}/{row.get('name') or ''}"
            if not key or key == "/":
                continue
            for col in TRANSLATED_COLUMNS:
                vi = row.get(f"{col}::{vi_name}") or (row.get(col) if vi_name == "default" else None)
                if vi in (None, ""):
                    continue
                out.append((sheet, key, col, str(vi), str(row.get(f"{col}::{en_name}") or ""), row))
    return out


def read_sheet(path: Path, lang: str) -> dict[tuple[str, str, str], dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    rows = csv.DictReader(io.StringIO(text))
    return {(r["sheet"], r["key"], r["column"]): r for r in rows if r.get("sheet") and r.get("key")}


def merge_translations(source: Path, workbook: Any) -> tuple[Any, dict[str, Any]]:
    """The workbook with ``<column>::<language>`` columns from the sheets, and a report per language."""
    langs = sheet_languages(source)
    if not langs:
        return workbook, {}
    survey = [dict(r) for r in workbook.survey or []]
    choices = [dict(r) for r in workbook.choices or []]
    copy = dataclasses.replace(workbook, survey=survey, choices=choices)
    report: dict[str, Any] = {}
    for lang in langs:
        sheet = read_sheet(sheet_path(source, lang), lang)
        name = language_name(lang)
        translated, untranslated, stale, draft = 0, [], [], 0
        for sheet_name, key, col, vi, _en, row in _texts(copy):
            own = str(row.get(f"{col}::{name}") or "").strip()
            if own:  # a translation typed into the workbook itself wins over the sheet
                translated += 1
                continue
            entry = sheet.get((sheet_name, key, col))
            text = (entry or {}).get(lang, "").strip()
            if text and entry is not None and entry.get("vi", "").strip() != vi.strip():
                stale.append(f"{sheet_name}:{key}:{col}")
                text = ""
            if text:
                translated += 1
                draft += (entry or {}).get("status", "draft").strip() != "reviewed"
            elif not (sheet_name == "choices" and key.split("/")[0] in PLACE_LISTS):
                untranslated.append(f"{sheet_name}:{key}:{col}")
            row[f"{col}::{name}"] = text or vi  # an empty cell would show "-": show the Vietnamese instead
        report[lang] = {
            "language": name,
            "translated": translated,
            "draft": draft,
            "status": "draft" if draft else "reviewed",
            "untranslated": untranslated,
            "stale": stale,
        }
        for header_name in ("survey_header", "choices_header"):
            header = [dict(h) for h in (getattr(copy, header_name) or [{}])] or [{}]
            for col in TRANSLATED_COLUMNS:
                header[0].setdefault(f"{col}::{name}", None)
            copy = dataclasses.replace(copy, **{header_name: header})
    return copy, report


def write_sheet(source: Path, lang: str) -> tuple[Path, int, int]:
    """Create or refresh the sheet from the workbook's current rows; (path, rows, rows without translation).

    Existing translations and statuses are kept; the ``vi``/``en`` columns show the current sources, except
    for a stale row, whose old ``vi`` is kept so the build (and the reviewer) can see it changed.
    """
    from pyxform.xls2json_backends import get_xlsform

    workbook = get_xlsform(xlsform=source)
    path = sheet_path(source, lang)
    old = read_sheet(path, lang) if path.is_file() else {}
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for sheet_name, key, col, vi, en, _row in _texts(workbook):
        if sheet_name == "choices" and key.split("/")[0] in PLACE_LISTS:
            continue
        k = (sheet_name, key, col)
        if k in seen:
            continue
        seen.add(k)
        prev = old.get(k, {})
        keep_vi = prev.get("vi") if prev.get(lang) else None
        rows.append(
            {
                "sheet": sheet_name,
                "key": key,
                "column": col,
                "vi": keep_vi or vi,
                "en": en,
                lang: prev.get(lang, ""),
                "status": prev.get("status") or "draft",
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*FIELDS, lang, "status"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path, len(rows), sum(1 for r in rows if not r[lang])
