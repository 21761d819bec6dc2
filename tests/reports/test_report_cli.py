"""`carecheck report` end to end: hand-built dataset, real rollup, CLI in a subprocess, files read back."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import openpyxl
import pytest
from lxml import html as lxml_html
from sqlmodel import Session

from aggregator import indicators as defs
from core.errors import Problem
from tests.reports.conftest import ReportDB
from tests.reports.dataset import EXPECTED, NAMES, PERSONAL_IDS

Q4 = ["--period", "2026Q4"]
HA_TIEN = ["--level", "district", "--area", "900"]


def _no_personal_data(text: str) -> None:
    for secret in NAMES + PERSONAL_IDS:
        assert secret not in text, f"personal data {secret!r} reached a report"


@pytest.fixture(scope="module")
def ha_tien_html(report_db: ReportDB, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("html") / "ha_tien.html"
    proc = report_db.report(*HA_TIEN, *Q4, "--format", "html", "--out", str(out))
    assert str(out) in proc.stdout
    return out.read_text(encoding="utf-8")


def test_html_has_every_indicator_with_lights_matching_the_rollup(
    report_db: ReportDB, ha_tien_html: str
) -> None:
    from aggregator.rollup import query_indicators

    doc = lxml_html.fromstring(ha_tien_html)
    rows = {tr.get("data-indicator"): tr for tr in doc.xpath('//table[@class="summary"]/tbody/tr')}
    assert set(rows) == set(defs.load()), "every defined indicator has a summary row"
    from aggregator.db import get_engine

    with Session(get_engine(report_db.settings)) as s:
        truth = {r.indicator: r for r in query_indicators(s, level="district", area="900", period="2026Q4")}
    for code, tr in rows.items():
        r = truth[code]
        assert tr.get("data-status") == r.status, code
        pill = tr.xpath('.//span[contains(@class, "light")]')[0]
        assert pill.text_content().strip()  # the status is written out, not only coloured
    # hand-worked figures (tests/reports/dataset.py)
    n, d, value, status = EXPECTED["district_primary"]
    cells = [td.text_content().strip() for td in rows["primary_right_age"].xpath("./td")]
    assert cells[1:4] == ["92,0 %", str(n), str(d)] and value == 92.0
    assert rows["primary_right_age"].get("data-status") == status
    assert rows["stations_national_immunisation"].xpath("./td")[2].text_content().strip() == "6"
    # plan II.2 injury events: per 1,000, no target in the plan
    n, d, value = EXPECTED["district_drowning"]
    cells = [td.text_content().strip() for td in rows["drowning_events_u16"].xpath("./td")]
    assert cells[1:4] == ["66,7 ‰", str(n), str(d)] and round(value, 1) == 66.7
    assert "đuối nước" in cells[0]
    assert rows["drowning_events_u16"].get("data-status") == "no_target"
    assert rows["stations_national_immunisation"].get("data-status") == "not_met"
    # header: org unit, level, hierarchy, period, generated at
    assert doc.xpath('string(//dd[@id="org-unit"])') == "Thành phố Hà Tiên (900)"
    assert "Quý 4/2026" in doc.xpath('string(//dd[@id="period"])')
    assert "Trước 01/7/2025" in ha_tien_html and "UTC+7" in ha_tien_html


def test_html_ranking_disaggregation_and_suppression(ha_tien_html: str) -> None:
    doc = lxml_html.fromstring(ha_tien_html)
    # Tiên Hải (3 children) is suppressed, and so, on this tiny dataset, are Tô Châu and Bình San: else the
    # district's 23/25 minus the others, or the 2025 wards and the sex and ethnicity cells adding up to them,
    # would give it away (aggregator.suppression). No commune has a figure to rank, so the section says so
    # once instead of drawing cards of hatched bars (rule 9)
    ranking = doc.xpath('//section[@id="ranking"]')[0]
    assert not ranking.xpath('.//div[@data-indicator="primary_right_age"]')
    blank = ranking.xpath('string(.//p[@id="ranking-blank"])')
    assert blank.startswith("Không đơn vị trực thuộc nào") and "đi học đúng độ tuổi (tiểu học" in blank
    assert not any(x in blank for x in ("90,0", "100,0", "66,7"))
    # disaggregation: island (3 children) suppressed, so border (21/22, the only other value with data) too;
    # Hoa (2) suppressed, so Khmer (4/5, the next smallest) too; Kinh 17/18 shown
    area = doc.xpath('//table[@data-dimension="area_type"]//tr[@data-indicator="primary_right_age"]')[0]
    island, border, mainland = area.xpath("./td")[1:]
    assert island.get("data-status") == "suppressed" and "%" not in island.text_content()
    assert border.get("data-status") == "suppressed" and "95,5" not in border.text_content()
    assert mainland.get("data-status") == "no_data"
    eth = doc.xpath('//table[@data-dimension="ethnicity"]//tr[@data-indicator="primary_right_age"]')[0]
    kinh, khmer, hoa, other = eth.xpath("./td")[1:]
    assert kinh.text_content().startswith("94,4 %") and kinh.get("data-status") == "met"
    assert khmer.get("data-status") == "suppressed" and hoa.get("data-status") == "suppressed"
    assert "80,0" not in khmer.text_content()


def test_html_quality_panel_and_no_personal_data(ha_tien_html: str) -> None:
    doc = lxml_html.fromstring(ha_tien_html)
    # 5 Tô Châu households (one superseded) + 3 Bình San + 1 Tiên Hải + 7 facility checks, all in Q4
    assert doc.xpath('string(//div[@id="q-received"]/b)') == "16"
    assert doc.xpath('string(//div[@id="q-quarantined"]/b)') == "1"  # the other one never landed: province
    assert int(doc.xpath('string(//div[@id="q-suppressed"]/b)')) > 0
    flags = {tr.get("data-flag"): tr.xpath("string(./td[2])") for tr in doc.xpath("//tr[@data-flag]")}
    assert flags == {"pid_invalid": "2", "age_school_mismatch": "1"}
    island = doc.xpath('//tr[@data-area-type="island"]/td')
    assert [td.text_content() for td in island] == ["Hải đảo", "2", "36,0 giờ", "3,0 ngày"]  # 0 h and 72 h
    _no_personal_data(ha_tien_html)
    # self-contained: nothing fetched from anywhere (the province office may be offline)
    low = ha_tien_html.lower()
    for needle in ("<script", "<link", "src=", "@import", "url(http", "<img"):
        assert needle not in low, needle


def test_html_english(report_db: ReportDB) -> None:
    text = report_db.render(level="district", area="900", lang="en").decode("utf-8")
    assert "Right-age primary attendance (6–10)" in text and "92.0 %" in text and ">Met<" in text
    assert "Q4 2026" in text and "Hidden (small cell)" in text


def test_xlsx_sheets_headers_and_figures(report_db: ReportDB, tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    report_db.report(*HA_TIEN, *Q4, "--format", "xlsx", "--out", str(out))
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["Tổng hợp", "Xu hướng", "Xếp hạng", "Phân tổ", "Chất lượng dữ liệu"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "B3"
        assert ws.cell(1, 1).font.bold and ws.cell(2, 1).value  # Vietnamese header, English under it
    summary = wb["Tổng hợp"]
    assert [summary.cell(1, c).value for c in (2, 3, 8)] == ["Chỉ tiêu", "Giá trị", "Đánh giá"]
    assert [summary.cell(2, c).value for c in (2, 3, 8)] == ["Indicator", "Value", "Status"]
    by_code = {row[0].value: row for row in summary.iter_rows(min_row=3) if row[0].value in defs.load()}
    assert set(by_code) == set(defs.load())
    prim = by_code["primary_right_age"]
    assert (prim[2].value, prim[3].value, prim[4].value, prim[7].value) == (92.0, 23, 25, "Đạt")
    assert prim[2].number_format == "0.00"
    trend = [
        (r[2].value, r[3].value)
        for r in wb["Xu hướng"].iter_rows(min_row=3)
        if r[0].value == "primary_right_age"
    ]
    assert trend == [("2026Q1", None), ("2026Q2", pytest.approx(500 / 6)), ("2026Q3", None), ("2026Q4", 92.0)]
    ranking = [
        (r[4].value, r[10].value)
        for r in wb["Xếp hạng"].iter_rows(min_row=3)
        if r[0].value == "primary_right_age"
    ]
    hidden = {
        ("Phường Bình San", "Ẩn (ô nhỏ)"),
        ("Phường Tô Châu", "Ẩn (ô nhỏ)"),
        ("Xã Tiên Hải", "Ẩn (ô nhỏ)"),
    }
    assert hidden <= set(ranking)  # the small cell and its complements (see the HTML test)
    sheet = wb["Chất lượng dữ liệu"]
    quality = {r[0].value: r[2].value for r in sheet.iter_rows(min_row=3) if r[1].value is None}
    assert quality["Số phiếu đã nhận"] == 16 and quality["Bản ghi đang cách ly (lỗi xử lý)"] == 1
    assert quality["Mã cờ: pid_invalid"] == 2
    everything = " ".join(str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row)
    _no_personal_data(everything)


def test_csv_long_format_with_bom(report_db: ReportDB, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    report_db.report(*HA_TIEN, *Q4, "--format", "csv", "--out", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    keys = [(r["indicator"], r["org_unit"], r["period"], r["disaggregation"]) for r in rows]
    assert len(keys) == len(set(keys)), "one row per indicator × org unit × period × disaggregation"
    by = {k: r for k, r in zip(keys, rows, strict=True)}
    total = by[("primary_right_age", "900", "2026Q4", "")]
    assert (total["numerator"], total["denominator"], total["value"], total["status"]) == (
        "23",
        "25",
        "92",
        "met",
    )
    assert total["name_vi"].startswith("Tỷ lệ trẻ 6–10 tuổi")
    tochau = by[("primary_right_age", "30766", "2026Q4", "")]  # the complement of Tiên Hải's small cell
    assert (tochau["numerator"], tochau["value"], tochau["status"]) == ("", "", "suppressed")
    small = by[("primary_right_age", "30781", "2026Q4", "")]
    assert (small["numerator"], small["denominator"], small["value"], small["status"]) == (
        "",
        "",
        "",
        "suppressed",
    )
    assert by[("primary_right_age", "900", "2026Q4", "ethnicity=hoa")]["status"] == "suppressed"
    assert by[("primary_right_age", "900", "2026Q2", "")]["numerator"] == "5"
    assert {r["indicator"] for r in rows} == set(defs.load())
    _no_personal_data(raw.decode("utf-8-sig"))


def test_province_and_2025_commune(report_db: ReportDB) -> None:
    body = report_db.render(level="province", area="91", fmt="csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    prov = next(
        r
        for r in rows
        if r["indicator"] == "primary_right_age"
        and r["org_unit"] == "91"
        and r["period"] == "2026Q4"
        and not r["disaggregation"]
    )
    assert (prov["numerator"], prov["denominator"]) == tuple(str(x) for x in EXPECTED["province_primary"])
    ranked = {
        r["org_unit"]
        for r in rows
        if r["indicator"] == "primary_right_age" and r["period"] == "2026Q4" and not r["disaggregation"]
    } - {"91"}
    assert {"900", "911"} <= ranked and len(ranked) == 15  # districts ranked at province level
    # 2025: Phường Hà Tiên (30769) took in Bình San, Đông Hồ, Pháo Đài, Mỹ Đức → Bình San's 12/12, suppressed
    # as it is in the legacy report (the same cell: one pattern for every answer)
    doc = lxml_html.fromstring(report_db.render(level="commune", area="30769", hierarchy="2025"))
    tr = doc.xpath('//table[@class="summary"]//tr[@data-indicator="primary_right_age"]')[0]
    assert [td.text_content().strip() for td in tr.xpath("./td")][1:4] == ["—", "—", "—"]
    assert tr.get("data-status") == "suppressed"
    assert "Phường Hà Tiên" in doc.xpath('string(//dd[@id="org-unit"])')


def test_bad_input_is_one_line_and_exit_1(report_db: ReportDB, tmp_path: Path) -> None:
    out = tmp_path / "bad.html"
    proc = report_db.report(*HA_TIEN, "--period", "2026Q5", "--out", str(out), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("carecheck: ") and "2026Q5" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"level": "district", "area": "999"}, "999"),
        ({"level": "county", "area": "900"}, "county"),
        ({"level": "district", "area": "900", "fmt": "pdf"}, "pdf"),
        ({"level": "district", "area": "900", "lang": "fr"}, "fr"),
        ({"level": "commune", "area": "30769", "hierarchy": "1975"}, "1975"),
    ],
)
def test_bad_input_is_a_problem_naming_it(report_db: ReportDB, kwargs: dict[str, str], needle: str) -> None:
    """What the CLI prints (``Problem.text()``) is one bilingual line naming the bad value."""
    with pytest.raises(Problem) as info:
        report_db.render(**kwargs)
    assert needle in info.value.text() and "\n" not in info.value.text()
    assert info.value.status in (400, 404)


def test_postgresql_gives_the_same_report(report_db: ReportDB, pg_url: str, tmp_path: Path) -> None:
    """The same dataset on PostgreSQL: byte-identical CSV and HTML (apart from the generation time)."""
    from core.settings import Settings
    from tests.reports.conftest import seeded

    pg = ReportDB(Settings(var_dir=tmp_path, database_url=pg_url, min_cell_size=5), pg_url)
    seeded(pg.settings)
    try:
        outputs = {}
        for name, db in (("sqlite", report_db), ("pg", pg)):
            for fmt in ("csv", "html"):
                text = db.render(level="district", area="900", fmt=fmt).decode("utf-8-sig")
                outputs[name, fmt] = re.sub(r"\d\d/\d\d/\d{4} \d\d:\d\d \(UTC\+7\)", "", text)
        assert outputs["pg", "csv"] == outputs["sqlite", "csv"]
        assert outputs["pg", "html"] == outputs["sqlite", "html"]
        assert "92,0 %" in outputs["pg", "html"]
    finally:
        from aggregator.db import get_engine

        get_engine(pg.settings).dispose()
