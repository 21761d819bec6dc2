"""The OData v4 feed read by a client library that is not ours (python-odata, a v4 client): it reads
``$metadata``, pages through ``IndicatorValues`` by ``@odata.nextLink``, and what it returns equals the
operator API's rows for the same reader and scope."""

from __future__ import annotations

import httpx
import pytest

from tests.console.conftest import DISTRICT, OFFICER, PASSWORD, Console

odata = pytest.importorskip("odata")
requests = pytest.importorskip("requests")
PERIOD = "2026Q4"


def _key(r: dict[str, object]) -> tuple[object, ...]:
    return (
        r["indicator"],
        r["org_unit"],
        r["level"],
        r["period"],
        r["numerator"],
        r["denominator"],
        r["value"],
        r["status"],
    )


def test_odata_client_pages_and_equals_the_api(console: Console) -> None:
    auth = requests.auth.HTTPBasicAuth(OFFICER, PASSWORD)
    service = odata.ODataService(
        console.url + "/odata/v4/", reflect_entities=True, auth=auth, quiet_progress=True
    )
    assert {"IndicatorValues", "ChildObservations", "Households"} <= set(service.entities)
    Value = service.entities["IndicatorValues"]
    query = service.query(Value).filter(Value.level == "commune").filter(Value.period == PERIOD)
    got = [
        {
            k: getattr(v, k)
            for k in (
                "indicator",
                "org_unit",
                "level",
                "period",
                "numerator",
                "denominator",
                "value",
                "status",
            )
        }
        for v in query
    ]
    api = httpx.get(
        console.url + "/api/v1/indicators",
        params={"level": "commune", "period": PERIOD},
        auth=(OFFICER, PASSWORD),
    ).json()["items"]
    assert len(got) > 200, "more than one server page, so the client followed @odata.nextLink"
    assert sorted(map(_key, got), key=repr) == sorted(map(_key, api), key=repr)
    # Row tables: the reader's district only, paged the same way.
    Obs = service.entities["ChildObservations"]
    rows = list(service.query(Obs))
    assert rows and {r.district_code for r in rows} == {DISTRICT}
    first = httpx.get(
        console.url + "/odata/v4/IndicatorValues",
        params={"$filter": "level eq 'commune'", "$top": "5"},
        auth=(OFFICER, PASSWORD),
    ).json()
    assert len(first["value"]) == 5 and "@odata.nextLink" not in first
    counted = httpx.get(
        console.url + "/odata/v4/ChildObservations",
        params={"$count": "true", "$top": "3"},
        auth=(OFFICER, PASSWORD),
    ).json()
    assert counted["@odata.count"] == len(rows) and len(counted["value"]) == 3
    bad = httpx.get(
        console.url + "/odata/v4/IndicatorValues", params={"$filter": "value gt 3"}, auth=(OFFICER, PASSWORD)
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "odata_query_invalid"
    # Reads of the feed and report downloads are exports: recorded in the audit log.
    from console import audit

    csv = httpx.get(console.url + f"/reports/district/{DISTRICT}.csv", auth=(OFFICER, PASSWORD))
    assert csv.status_code == 200
    reasons = {
        e["reason"] for e in audit.search(console.couch, console.settings, kind="export", actor=OFFICER)
    }
    assert {"odata_IndicatorValues", "odata_ChildObservations", "report_csv"} <= reasons
