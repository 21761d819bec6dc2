"""`carecheck forms admin-units` rewrites only the district/commune rows, from the register, idempotently."""

from __future__ import annotations

import shutil
from pathlib import Path

from openpyxl import load_workbook

from forms.admin_units import update_admin_units
from forms.build import build_all
from forms.catalog import BuiltForm

from .conftest import SRC


def choice_rows(path: Path) -> list[tuple[object, ...]]:
    ws = load_workbook(path)["choices"]
    return [tuple(r) for r in ws.iter_rows(values_only=True)]


def test_committed_sources_are_up_to_date_with_the_register(
    tmp_path: Path, build_dir: Path, built: dict[str, BuiltForm]
) -> None:
    src = tmp_path / "src"
    shutil.copytree(SRC, src)
    for p in src.glob("*.xlsx"):
        before = choice_rows(p)
        assert update_admin_units(p) == 15 + 143
        assert choice_rows(p) == before
    again = {b.form_id: b.version for b in build_all(src, build_dir)}
    assert again == {k: b.version for k, b in built.items()}


def test_only_admin_rows_change_and_stay_in_place(tmp_path: Path) -> None:
    path = Path(shutil.copy(SRC / "household_child_check.xlsx", tmp_path / "hh.xlsx"))
    wb = load_workbook(path)
    ws = wb["choices"]
    header = [c.value for c in ws[1]]
    li, ni = header.index("list_name"), header.index("name")
    rows = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)]
    # An author deleted a commune, renamed a district label, and edited an unrelated label.
    rows = [r for r in rows if not (r[li] == "commune" and r[ni] == "31078")]
    for r in rows:
        if r[li] == "district" and r[ni] == "911":
            r[header.index("label::Tiếng Việt (vi)")] = "Phu Quoc (sai)"
        if r[li] == "sex" and r[ni] == "male":
            r[header.index("label::English (en)")] = "Boy"
    ws.delete_rows(2, ws.max_row)
    for r in rows:
        ws.append(r)
    wb.save(path)

    update_admin_units(path)
    after = choice_rows(path)
    body = after[1:]
    lists = [r[li] for r in body]
    first_admin = lists.index("district")
    assert set(lists[first_admin : first_admin + 158]) == {"district", "commune"}  # one block, where it was
    assert "district" not in lists[first_admin + 158 :] and "commune" not in lists[first_admin + 158 :]
    by_key = {(r[li], r[ni]): r for r in body}
    assert by_key[("commune", "31078")][header.index("district")] == "911"
    assert by_key[("district", "911")][header.index("label::Tiếng Việt (vi)")] == "Thành phố Phú Quốc"
    assert by_key[("district", "911")][header.index("label::English (en)")] == "Thành phố Phú Quốc"
    assert by_key[("sex", "male")][header.index("label::English (en)")] == "Boy"  # author's edit kept
