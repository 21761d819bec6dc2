"""GET /api/v1/indicators: the JSON shape, the default period, area scoping by role, problems as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from aggregator import rollup
from aggregator.db import dispose_engines, init_db
from aggregator.indicators import load
from console.app import create_app
from core.couch import Couch
from core.services import CouchProcess
from sync_server.auth import Accounts
from tests.conftest import make_settings
from tests.indicators import dataset as ds

PASSWORD = "mat-khau-chi-tieu"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, couch_server: CouchProcess) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("api")
    settings = make_settings(tmp, couch_server, database_url=f"sqlite:///{tmp}/c.db", min_cell_size=2)
    engine = init_db(settings)
    with Session(engine) as s:
        ds.seed(s)
    rollup.rebuild(engine)
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    with TestClient(create_app(settings), base_url="http://officer.test") as c:
        accounts = Accounts(couch, settings)
        accounts.add("huyen_ht", PASSWORD, "district", "900")
        accounts.add("tinh", PASSWORD, "province", None)
        accounts.add("ctv_pq", PASSWORD, "collaborator", ds.P1)
        yield c
    dispose_engines()


def auth(name: str) -> httpx.DigestAuth:
    return httpx.DigestAuth(name, PASSWORD)


def test_province_reads_the_province(client: TestClient) -> None:
    r = client.get(
        "/api/v1/indicators", params={"level": "province", "area": "91", "period": "2026"}, auth=auth("tinh")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == "2026" and body["hierarchy"] == "legacy"
    rows = {x["indicator"]: x for x in body["items"]}
    assert len(rows) == len(load()) == 28  # 25 + the three injury indicators of plan II.2
    cedc = rows["cedc_rate"]
    for key in ("indicator", "org_unit", "period", "numerator", "denominator", "value", "target", "status"):
        assert key in cedc
    # 2 of 9 children: open on its own, but on this tiny dataset it is the complement of small cells that
    # would otherwise be worked out from it (aggregator.suppression): numerator and value hidden
    assert (cedc["org_unit"], cedc["numerator"], cedc["denominator"]) == ("91", None, 9)
    assert cedc["value"] is None and cedc["status"] == "suppressed"
    assert cedc["target"]["op"] == "<" and cedc["target"]["value"] == 0.8
    prim = rows["primary_right_age"]
    assert prim["status"] == "met" and prim["value"] == pytest.approx(
        100 * prim["numerator"] / prim["denominator"]
    )
    deaths = rows["child_drowning_deaths"]
    # a count: its value is the numerator (2 deaths in 3 households; here hidden as a complement)
    assert deaths["unit"] == "count" and deaths["denominator"] == 3
    assert (deaths["status"], deaths["value"]) in (("no_target", 2), ("suppressed", None))


def test_period_defaults_to_this_year_and_2025_hierarchy(client: TestClient) -> None:
    r = client.get(
        "/api/v1/indicators",
        params={"level": "commune", "hierarchy": "2025", "indicator": ["cedc_rate", "orphans_family_care"]},
        auth=auth("tinh"),
    )
    assert r.status_code == 200 and r.json()["period"] == str(date.today().year)
    r = client.get(
        "/api/v1/indicators",
        params={
            "level": "commune",
            "area": "30769",
            "hierarchy": "2025",
            "period": "2026",
            "indicator": "cedc_rate",
        },
        auth=auth("huyen_ht"),
    )
    assert r.status_code == 200, r.text
    [row] = r.json()["items"]
    assert (row["org_unit"], row["denominator"], row["status"]) == ("30769", 2, "suppressed")  # a complement
    # 2025 ward 30766 also took in Dương Hòa (30805) of Kiên Lương (902): not wholly the officer's district
    r = client.get(
        "/api/v1/indicators",
        params={"level": "commune", "area": "30766", "hierarchy": "2025"},
        auth=auth("huyen_ht"),
    )
    assert r.status_code == 403


def test_district_officer_is_scoped_to_their_district(client: TestClient) -> None:
    r = client.get(
        "/api/v1/indicators",
        params={"level": "district", "period": "2026", "indicator": "cedc_rate"},
        auth=auth("huyen_ht"),
    )
    assert r.status_code == 200
    assert [x["org_unit"] for x in r.json()["items"]] == ["900"]
    r = client.get(
        "/api/v1/indicators",
        params={"level": "commune", "period": "2026", "indicator": "cedc_rate"},
        auth=auth("huyen_ht"),
    )
    assert {x["org_unit"] for x in r.json()["items"]} == {
        "30766",
        "30769",
        "30772",
        "30775",
        "30778",
        "30781",
        "30784",
    }
    r = client.get(
        "/api/v1/indicators",
        params={
            "level": "district",
            "area": "900",
            "children": "true",
            "period": "2026",
            "indicator": "cedc_rate",
        },
        auth=auth("huyen_ht"),
    )
    statuses = {x["org_unit"]: x["status"] for x in r.json()["items"]}
    assert statuses["30766"] == "suppressed" and statuses["30772"] == "no_data"  # 30766: a complement
    for params in (
        {"level": "district", "area": "911"},
        {"level": "province"},
        {"level": "commune", "area": ds.P1},
        {"level": "commune", "area": "31078", "hierarchy": "2025"},
    ):
        r = client.get("/api/v1/indicators", params=params, auth=auth("huyen_ht"))
        assert r.status_code == 403, params
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "900" in r.json()["detail"]


def test_collaborators_and_strangers_are_refused(client: TestClient) -> None:
    assert client.get("/api/v1/indicators", auth=auth("ctv_pq")).status_code == 403
    assert client.get("/api/v1/indicators").status_code == 401


def test_bad_parameters_get_a_json_problem(client: TestClient) -> None:
    r = client.get("/api/v1/indicators", params={"period": "2026Q7"}, auth=auth("tinh"))
    assert r.status_code == 400 and "2026Q4" in r.json()["detail_en"]
    r = client.get("/api/v1/indicators", params={"level": "commune", "area": "12345"}, auth=auth("tinh"))
    assert r.status_code == 404 and r.json()["detail_vi"].startswith("Không có đơn vị")
    r = client.get("/api/v1/indicators", params={"level": "county"}, auth=auth("tinh"))
    assert r.status_code == 400


def test_small_cells_are_suppressed_in_the_api(client: TestClient) -> None:
    r = client.get(
        "/api/v1/indicators",
        params={"level": "commune", "area": ds.H2, "period": "2026", "indicator": "orphans_family_care"},
        auth=auth("tinh"),
    )
    [row] = r.json()["items"]  # 0 of 1: below min_cell_size 2
    assert (row["numerator"], row["value"], row["status"]) == (None, None, "suppressed")
