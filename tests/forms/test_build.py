"""The committed XLSForms compile, pass ODK Validate, publish the contract layout; versions follow content."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from core.errors import FormBuildError
from forms.build import build_all, build_one, odk_validate_jar
from forms.catalog import BuiltForm, Catalog

from .conftest import SRC

FORM_IDS = {"household_child_check", "commune_facility_check"}


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_both_forms_build_with_the_contract_layout(build_dir: Path, built: dict[str, BuiltForm]) -> None:
    assert set(built) == FORM_IDS
    for form_id, b in built.items():
        vdir = build_dir / form_id / b.version
        assert (build_dir / form_id / "current").read_text().strip() == b.version
        assert b.xml_path == vdir / "form.xml" and (vdir / "media").is_dir()
        meta = json.loads((vdir / "form.json").read_text(encoding="utf-8"))
        assert {
            "form_id",
            "version",
            "title",
            "hash",
            "languages",
            "n_questions",
            "media",
            "built_at",
            "source_sha256",
        } <= set(meta)
        assert b.hash == "md5:" + hashlib.md5(b.xml_bytes()).hexdigest()
        assert meta["source_sha256"].startswith(b.version) and len(b.version) == 10
        # Khmer comes from the translation sheet (forms/xlsforms/translations/), merged at build time.
        assert b.languages == ["Tiếng Việt (vi)", "English (en)", "ខ្មែរ (km)"]
        assert (vdir / "enketo.json").is_file()  # the web app's form, from the same build
        assert b.title and not b.title.isascii()  # Vietnamese title
        assert b.media == []  # choice_filter compiles to an internal secondary instance: no itemsets.csv
        assert not list(build_dir.glob(".staging-*"))
    assert built["household_child_check"].n_questions >= 35
    assert built["commune_facility_check"].n_questions == 8


def test_output_passes_odk_validate_as_served(built: dict[str, BuiltForm]) -> None:
    for b in built.values():
        r = subprocess.run(
            ["java", "-jar", str(odk_validate_jar()), str(b.xml_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0 and "Xform is valid" in r.stdout + r.stderr, r.stderr


def test_rebuild_of_unchanged_sources_changes_nothing(
    build_dir: Path, built: dict[str, BuiltForm], tmp_path: Path
) -> None:
    before = tree(build_dir)
    again = {b.form_id: b for b in build_all(SRC, build_dir)}
    assert tree(build_dir) == before
    assert {k: (b.version, b.hash) for k, b in again.items()} == {
        k: (b.version, b.hash) for k, b in built.items()
    }
    # A resave of the workbook (new bytes, same cells) and a build elsewhere give the same version and hash.
    src = tmp_path / "src"
    src.mkdir()
    for p in SRC.glob("*.xlsx"):
        load_workbook(p).save(src / p.name)
    shutil.copytree(SRC / "translations", src / "translations")  # part of the source (forms/translations.py)
    fresh = {b.form_id: b for b in build_all(src, tmp_path / "out")}
    assert {k: (b.version, b.hash) for k, b in fresh.items()} == {
        k: (b.version, b.hash) for k, b in built.items()
    }


def _copy_form(tmp_path: Path, form_id: str = "commune_facility_check") -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "translations").mkdir(exist_ok=True)
    # The translation sheets are part of the source (forms/translations.py).
    for sheet in (SRC / "translations").glob(f"{form_id}.*.csv"):
        shutil.copy(sheet, src / "translations" / sheet.name)
    return Path(shutil.copy(SRC / f"{form_id}.xlsx", src / f"{form_id}.xlsx"))


def _set_cell(path: Path, sheet: str, name: str, column: str, value: str) -> None:
    wb = load_workbook(path)
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    if column not in header:
        ws.cell(row=1, column=len(header) + 1, value=column)
        header.append(column)
    for row in ws.iter_rows(min_row=2):
        if row[header.index("name")].value == name:
            ws.cell(row=row[0].row, column=header.index(column) + 1, value=value)
    wb.save(path)


def test_changing_a_label_changes_the_version_and_keeps_the_old(
    tmp_path: Path, built: dict[str, BuiltForm]
) -> None:
    path = _copy_form(tmp_path)
    out = tmp_path / "out"
    old = build_one(path, out)
    assert old.version == built["commune_facility_check"].version
    _set_cell(path, "survey", "station_name", "label::English (en)", "Health station name")
    new = build_one(path, out)
    assert new.version != old.version and new.hash != old.hash
    assert b'version="' + new.version.encode() + b'"' in new.xml_bytes()
    cat = Catalog(out)
    assert cat.current_version("commune_facility_check") == new.version
    assert cat.versions("commune_facility_check") == sorted([old.version, new.version])
    assert cat.get("commune_facility_check", old.version) == old  # submissions against it stay accepted


def test_adding_khmer_needs_no_code_change(tmp_path: Path) -> None:
    from forms.admin_units import update_admin_units

    path = _copy_form(tmp_path)
    km = "label::ខ្មែរ (km)"
    _set_cell(path, "survey", "station_name", km, "ឈ្មោះមណ្ឌលសុខភាព")
    _set_cell(path, "choices", "yes", km, "បាទ/ចាស")
    _set_cell(path, "choices", "no", km, "ទេ")
    update_admin_units(path)  # place names fill the new language column too
    b = build_one(path, tmp_path / "out")
    assert b.languages == ["Tiếng Việt (vi)", "English (en)", "ខ្មែរ (km)"]
    xml = b.xml_bytes().decode("utf-8")
    assert "ឈ្មោះមណ្ឌលសុខភាព" in xml and 'lang="ខ្មែរ (km)"' in xml
    assert xml.count("Đặc khu Phú Quốc") == 0  # legacy names only
    assert xml.count("Phường Vĩnh Thanh Vân") == 3  # one label per language


def test_a_hand_set_version_is_refused(tmp_path: Path) -> None:
    path = _copy_form(tmp_path)
    wb = load_workbook(path)
    ws = wb["settings"]
    ws.cell(row=1, column=ws.max_column + 1, value="version")
    ws.cell(row=2, column=ws.max_column, value="2026112901")
    wb.save(path)
    with pytest.raises(FormBuildError, match="commune_facility_check.xlsx: settings: .*version"):
        build_all(path.parent, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_odk_validate_failure_is_one_line_and_all_or_nothing(tmp_path: Path, build_dir: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(build_dir, out)
    before = tree(out)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SRC / "commune_facility_check.xlsx", src)  # a good form, built first …
    (src / "zz_bad.md").write_text(
        "| survey |\n| | type | name | label | constraint |\n| | integer | n | N | . > 1 and ( |\n",
        encoding="utf-8",
    )  # … then one JavaRosa rejects
    with pytest.raises(FormBuildError) as ei:
        build_all(src, out)
    msg = ei.value.text("en")
    assert msg.startswith("zz_bad.md: ODK Validate: ") and "\n" not in msg
    assert "constraint" in msg and "mismatched" in msg
    assert tree(out) == before  # the previous good build is untouched, nothing half-built


def test_missing_java_is_a_clear_one_line_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy_form(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    with pytest.raises(FormBuildError, match=r"^commune_facility_check.xlsx: .*Java is needed .*ODK Valid"):
        build_all(path.parent, tmp_path / "out")
    assert not (tmp_path / "out").exists()


EXTERNAL_CHOICES = """\
| survey |
| | type | name | label | choice_filter |
| | select_one province | province | Province | |
| | select_one_external town | town | Town | province=${province} |
| choices |
| | list_name | name | label |
| | province | a | A |
| | province | b | B |
| external_choices |
| | list_name | name | label | province |
| | town | t1 | T1 | a |
| | town | t2 | T2 | b |
"""


def test_itemsets_and_media_files_are_published_with_hashes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "ext_form-media").mkdir(parents=True)
    (src / "ext_form.md").write_text(EXTERNAL_CHOICES, encoding="utf-8")
    (src / "ext_form-media" / "help.png").write_bytes(b"\x89PNG fake image bytes")
    b = build_all(src, tmp_path / "out")[0]
    assert [m.filename for m in b.media] == ["help.png", "itemsets.csv"]
    for m in b.media:
        assert m.path.is_file() and m.hash == "md5:" + hashlib.md5(m.path.read_bytes()).hexdigest()
    assert '"town","t1","T1","a"' in b.media_file("itemsets.csv").path.read_text()  # type: ignore[union-attr]
    (src / "ext_form-media" / "help.png").write_bytes(b"\x89PNG another image")
    assert build_all(src, tmp_path / "out")[0].version != b.version  # media is part of the content
