"""GET /reports/…: a district officer reads their district; another district, province, collaborator → 403."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import httpx
import openpyxl
import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from core.couch import Couch
from core.services import CouchProcess
from sync_server.auth import Accounts
from tests.conftest import make_settings
from tests.reports.conftest import ReportDB

PASSWORD = "mat-khau-bao-cao"


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, couch_server: CouchProcess, report_db: ReportDB
) -> Iterator[TestClient]:
    """One server for the module (accounts are argon2-hashed: creating them per test costs seconds)."""
    settings = make_settings(
        tmp_path_factory.mktemp("route"), couch_server, database_url=report_db.url, min_cell_size=5
    )
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    with TestClient(create_app(settings), base_url="http://officer.test") as c:
        accounts = Accounts(couch, settings)
        accounts.add("huyen_ht", PASSWORD, "district", "900")  # Hà Tiên district officer
        accounts.add("huyen_pq", PASSWORD, "district", "911")  # Phú Quốc district officer
        accounts.add("tinh", PASSWORD, "province", None)
        accounts.add("ctv_tc", PASSWORD, "collaborator", "30766")
        yield c


def auth(name: str) -> httpx.DigestAuth:
    return httpx.DigestAuth(name, PASSWORD)


def test_district_officer_reads_own_district(client: TestClient) -> None:
    r = client.get("/reports/district/900", params={"period": "2026Q4"}, auth=auth("huyen_ht"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        "Thành phố Hà Tiên (900)" in r.text
        and "<svg" in r.text
        and 'data-indicator="primary_right_age"' in r.text
    )
    assert "92,0 %" in r.text
    en = client.get("/reports/district/900", params={"period": "2026Q4", "lang": "en"}, auth=auth("huyen_ht"))
    assert en.status_code == 200 and "Right-age primary attendance" in en.text
    # a commune of their district, in both hierarchies
    assert client.get("/reports/commune/30766?period=2026Q4", auth=auth("huyen_ht")).status_code == 200
    r = client.get(
        "/reports/commune/30769", params={"period": "2026Q4", "hierarchy": "2025"}, auth=auth("huyen_ht")
    )
    assert r.status_code == 200 and "Phường Hà Tiên" in r.text


def test_spreadsheet_and_csv_downloads(client: TestClient) -> None:
    r = client.get("/reports/district/900.xlsx", params={"period": "2026Q4"}, auth=auth("huyen_ht"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert 'filename="carecheck_district_900_2026Q4.xlsx"' in r.headers["content-disposition"]
    assert openpyxl.load_workbook(io.BytesIO(r.content)).sheetnames[0] == "Tổng hợp"
    r = client.get("/reports/district/900.csv", params={"period": "2026Q4"}, auth=auth("tinh"))
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert any(
        x["indicator"] == "primary_right_age" and x["org_unit"] == "900" and x["value"] == "92" for x in rows
    )


@pytest.mark.parametrize(
    ("who", "path", "hierarchy"),
    [
        ("huyen_pq", "/reports/district/900", "legacy"),  # another district
        ("huyen_pq", "/reports/commune/30766", "legacy"),  # a commune of another district
        ("huyen_ht", "/reports/commune/31078", "2025"),  # Đặc khu Phú Quốc (2025): only Phú Quốc communes
        ("huyen_ht", "/reports/province/91", "legacy"),  # the province's report
        ("ctv_tc", "/reports/commune/30766", "legacy"),  # collaborators submit; they do not read reports
    ],
)
def test_outside_the_area_is_403(client: TestClient, who: str, path: str, hierarchy: str) -> None:
    r = client.get(path, params={"period": "2026Q4", "hierarchy": hierarchy}, auth=auth(who))
    assert r.status_code == 403, r.text
    assert "primary_right_age" not in r.text and "Tỷ lệ" not in r.text


def test_province_reads_everything_and_anonymous_is_challenged(client: TestClient) -> None:
    for path, hierarchy in (
        ("/reports/province/91", "legacy"),
        ("/reports/district/911", "legacy"),
        ("/reports/commune/31078", "2025"),
    ):
        r = client.get(path, params={"period": "2026Q4", "hierarchy": hierarchy}, auth=auth("tinh"))
        assert r.status_code == 200, (path, r.text[:300])
    r = client.get("/reports/district/900", params={"period": "2026Q4"})
    assert r.status_code == 401 and "www-authenticate" in r.headers
    bad = client.get("/reports/district/900", params={"period": "2026Q9"}, auth=auth("huyen_ht"))
    assert bad.status_code == 400 and "2026Q9" in bad.text and "<h1>" in bad.text


def test_one_status_in_every_output(client: TestClient, report_db: ReportDB) -> None:
    """Rule 9: the same cells through the JSON API, the CLI, CSV, XLSX and HTML give the same statuses (and
    counts are shown as counts)."""
    import subprocess

    from lxml import html as lxml_html

    from aggregator.indicators.status import from_label
    from tests.reports.conftest import CARECHECK

    q = {"level": "district", "area": "900", "period": "2026Q4"}
    api = client.get("/api/v1/indicators", params=q, auth=auth("huyen_ht"))
    assert api.status_code == 200, api.text
    truth = {i["indicator"]: i["status"] for i in api.json()["items"]}
    assert {i["status_text"]["vi"] for i in api.json()["items"]} >= {"Đạt", "Chưa đạt", "Không có mục tiêu"}
    assert len(set(truth.values())) >= 3
    # HTML: the summary rows' statuses and the words in them
    page = client.get("/reports/district/900", params={"period": "2026Q4"}, auth=auth("huyen_ht"))
    doc = lxml_html.fromstring(page.text)
    rows = doc.xpath('//table[@class="summary"]/tbody/tr')
    assert {tr.get("data-indicator"): tr.get("data-status") for tr in rows} == truth
    for tr in rows:
        pill = tr.xpath('.//span[contains(@class, "light")]')[0].text_content()
        assert from_label(pill) == tr.get("data-status")
    # CSV: the totals of the district
    body = client.get("/reports/district/900.csv", params={"period": "2026Q4"}, auth=auth("huyen_ht")).content
    csv_rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    got = {
        r["indicator"]: r["status"]
        for r in csv_rows
        if r["org_unit"] == "900" and r["period"] == "2026Q4" and not r["disaggregation"]
    }
    assert got == truth
    assert all(from_label(r["status_text"]) == r["status"] for r in csv_rows)
    counts = [r for r in csv_rows if r["unit"] == "count" and r["org_unit"] == "900" and r["value"]]
    assert counts and all(r["denominator"] == "" and "." not in r["value"] for r in counts)
    # XLSX: the summary sheet's status column (words)
    xlsx = client.get("/reports/district/900.xlsx", params={"period": "2026Q4"}, auth=auth("huyen_ht"))
    ws = openpyxl.load_workbook(io.BytesIO(xlsx.content))["Tổng hợp"]
    header = [c.value for c in ws[1]]
    col = header.index("Trạng thái") if "Trạng thái" in header else 7
    sheet = {
        ws.cell(r, 1).value: from_label(str(ws.cell(r, col + 1).value))
        for r in range(3, ws.max_row + 1)
        if ws.cell(r, 1).value in truth
    }
    assert sheet == truth
    # CLI: one indicator of each status
    picked = {status: code for code, status in sorted(truth.items())}
    for status, code in picked.items():
        out = subprocess.run(
            [
                str(CARECHECK),
                "indicators",
                "show",
                code,
                "--level",
                "district",
                "--area",
                "900",
                "--period",
                "2026Q4",
            ],
            env={**report_db.env(), "COLUMNS": "250"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        line = next(x for x in out.stdout.splitlines() if x.startswith("│ 900 "))
        assert f"({status})" in line, (code, line)
