"""Rewrite the `district` and `commune` choice rows of an XLSForm from the register (core.orgunits).

Only those rows change; every other cell of the workbook stays as the author left it. Choice `name` is the
official code (district `911`, commune `31078`), every `label::…` column gets the official Vietnamese name
(place names are not translated), and commune rows carry their district code in the `district` column that the
`choice_filter` of the `commune` question reads.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from core.errors import FormBuildError
from core.orgunits import communes, districts

ADMIN_LISTS = ("district", "commune")
FILTER_COLUMN = "district"


def admin_unit_rows() -> list[dict[str, str]]:
    """The choice rows for lists `district` (15) and `commune` (143), ordered by code."""
    rows = [
        {"list_name": "district", "name": d.code, "label": d.name}
        for d in sorted(districts().values(), key=lambda d: d.code)
    ]
    rows += [
        {"list_name": "commune", "name": c.code, "label": c.name, FILTER_COLUMN: c.district_code}
        for c in sorted(communes().values(), key=lambda c: (c.district_code, c.code))
    ]
    return rows


def update_admin_units(path: Path) -> int:
    """Replace the admin-unit rows on the `choices` sheet of ``path`` in place; returns the number written."""
    wb = load_workbook(path)
    if "choices" not in wb.sheetnames:
        raise FormBuildError(f"{path.name}: không có trang 'choices'.", f"{path.name}: no 'choices' sheet.")
    ws = wb["choices"]
    header = [str(c.value).strip() if c.value is not None else "" for c in ws[1]]
    if "list_name" not in header or "name" not in header:
        raise FormBuildError(
            f"{path.name}: trang 'choices' thiếu cột list_name/name.",
            f"{path.name}: the 'choices' sheet lacks the list_name/name columns.",
        )
    if FILTER_COLUMN not in header:
        header.append(FILTER_COLUMN)
        ws.cell(row=1, column=len(header), value=FILTER_COLUMN)
    col = {h: i for i, h in enumerate(header) if h}
    label_cols = [h for h in header if h == "label" or h.startswith("label::")]

    body = [
        list(r) + [None] * (len(header) - len(r))
        for r in ws.iter_rows(min_row=2, max_col=len(header), values_only=True)
    ]
    while body and all(v in (None, "") for v in body[-1]):
        body.pop()
    keep: list[list[object]] = []
    insert_at: int | None = None
    for r in body:
        if str(r[col["list_name"]] or "").strip() in ADMIN_LISTS:
            insert_at = len(keep) if insert_at is None else insert_at
            continue
        keep.append(r)
    new: list[list[object]] = []
    for a in admin_unit_rows():
        row: list[object] = [None] * len(header)
        row[col["list_name"]], row[col["name"]] = a["list_name"], a["name"]
        for lc in label_cols:
            row[col[lc]] = a["label"]
        if FILTER_COLUMN in a:
            row[col[FILTER_COLUMN]] = a[FILTER_COLUMN]
        new.append(row)
    at = len(keep) if insert_at is None else insert_at
    rows = keep[:at] + new + keep[at:]

    ws.delete_rows(2, ws.max_row)
    for i, r in enumerate(rows, start=2):
        for j, v in enumerate(r, start=1):
            ws.cell(row=i, column=j, value=v)
    wb.save(path)
    return len(new)
