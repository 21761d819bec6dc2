"""Translation sheets merged at build time: Khmer in the XForm, ODK Validate and Enketo pass, the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from forms.build import build_one
from forms.enketo import ENKETO_FILE
from forms.translations import write_sheet

FORM_MD = """
| survey |
| | type | name | label::Tiếng Việt (vi) | label::English (en) | hint::Tiếng Việt (vi) | constraint \
| constraint_message::Tiếng Việt (vi) |
| | select_one yes_no | consent | Đồng ý? | Agree? | Hỏi chủ hộ | | |
| | integer | n | Số trẻ | Children | | . < 16 | Dưới 16 |
| | text | hamlet | Ấp | Hamlet | | | |
| | select_one district | district | Huyện | District | | | |
| choices |
| | list_name | name | label::Tiếng Việt (vi) | label::English (en) |
| | yes_no | yes | Có | Yes |
| | yes_no | no | Không | No |
| | district | 911 | Thành phố Phú Quốc | Thành phố Phú Quốc |
| settings |
| | form_id | default_language |
| | tiny_km | Tiếng Việt (vi) |
"""


def _write_form(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    path = src / "tiny_km.md"
    path.write_text(FORM_MD, encoding="utf-8")
    return path


def _fill(sheet: Path, km: dict[tuple[str, str], str], *, stale: str | None = None) -> None:
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    for r in rows:
        r["km"] = km.get((r["key"], r["column"]), r["km"])
        if stale and r["key"] == stale:
            r["vi"] = "một câu cũ"
    with sheet.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_sheet_written_then_merged_with_report(tmp_path: Path) -> None:
    path = _write_form(tmp_path)
    # write_sheet reads .xlsx through pyxform's reader; markdown works the same way.
    sheet, n, missing = write_sheet(path, "km")
    assert (
        sheet == path.parent / "translations" / "tiny_km.km.csv" and n == missing == 8
    )  # place names left out
    _fill(
        sheet,
        {
            ("consent", "label"): "យល់ព្រម?",
            ("consent", "hint"): "សួរមេគ្រួសារ",
            ("n", "label"): "ចំនួនកុមារ",
            ("n", "constraint_message"): "ក្រោម ១៦",
            ("yes_no/yes", "label"): "បាទ/ចាស",
            ("hamlet", "label"): "ភូមិ",
        },
        stale="hamlet",
    )
    b = build_one(path, tmp_path / "out")  # runs ODK Validate and Enketo's transform
    assert b.languages == ["Tiếng Việt (vi)", "English (en)", "ខ្មែរ (km)"]
    xml = b.xml_bytes().decode("utf-8")
    assert "យល់ព្រម?" in xml and "សួរមេគ្រួសារ" in xml and "ក្រោម ១៦" in xml and "បាទ/ចាស" in xml
    assert "ភូមិ" not in xml  # stale: its Vietnamese source changed since it was translated
    report = b.extra["translations"]["km"]
    assert report["translated"] == 5 and report["status"] == "draft"
    assert report["stale"] == ["survey:hamlet:label"]
    assert set(report["untranslated"]) == {
        "survey:hamlet:label",
        "survey:district:label",
        "choices:yes_no/no:label",
    }
    enketo = json.loads((b.dir / ENKETO_FILE).read_text(encoding="utf-8"))
    assert enketo["languageMap"] == {"Tiếng Việt (vi)": "vi", "English (en)": "en", "ខ្មែរ (km)": "km"}
    assert 'lang="km"' in enketo["form"] and "យល់ព្រម?" in enketo["form"]
    assert "<tiny_km" in enketo["model"]


def test_refresh_keeps_translations_and_reviewed_status(tmp_path: Path) -> None:
    path = _write_form(tmp_path)
    sheet, _, _ = write_sheet(path, "km")
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    rows[0]["km"], rows[0]["status"] = "យល់ព្រម?", "reviewed"
    with sheet.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    _, n, missing = write_sheet(path, "km")
    again = list(csv.DictReader(sheet.open(encoding="utf-8")))
    assert n == 8 and missing == 7
    assert again[0]["km"] == "យល់ព្រម?" and again[0]["status"] == "reviewed"
