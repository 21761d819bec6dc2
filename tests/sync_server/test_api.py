"""Operator API: area scoping (district: its area, province: all, collaborators: 403), detail, paging.

Also the devices report."""

from __future__ import annotations

import uuid

from tests.sync_server.conftest import Server
from tests.sync_server.helpers import instance, parts


def _send(server: Server, user: str, device: str, **kw: object) -> str:
    iid = f"uuid:{uuid.uuid4()}"
    r = server.client.post(
        f"/submission?deviceID={device}", files=parts(instance(instance_id=iid, **kw)), auth=server.auth(user)
    )
    assert r.status_code == 201, r.text
    return iid


def test_area_scoping_detail_versions_and_paging(server: Server) -> None:
    c = server.client
    pq1 = _send(server, "ctv_pq", "collect:pq", house_photo="h.jpg")
    pq2 = _send(server, "ctv_pq", "collect:pq", deprecated_id=pq1, hamlet="Ấp 9")
    rg = _send(server, "ctv_rg", "collect:rg", district="899", commune="30742")

    r = c.get("/api/v1/submissions", auth=server.auth("ctv_pq"))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 403 and r.headers["x-openrosa-version"] == "1.0"
    assert c.get("/api/v1/submissions").status_code == 401

    district = c.get("/api/v1/submissions", auth=server.auth("huyen_pq")).json()
    assert {i["instance_id"] for i in district["items"]} == {pq1, pq2}
    province = c.get("/api/v1/submissions", auth=server.auth("tinh")).json()
    assert {i["instance_id"] for i in province["items"]} == {pq1, pq2, rg}

    assert c.get(f"/api/v1/submissions/{rg}", auth=server.auth("huyen_pq")).status_code == 404
    assert c.get("/api/v1/submissions/uuid:nope", auth=server.auth("tinh")).status_code == 404
    old = c.get(f"/api/v1/submissions/{pq1}", auth=server.auth("huyen_pq")).json()
    assert old["status"] == "superseded" and old["superseded_by"] == [pq2]
    assert old["fields"]["hamlet"] == "Ấp 1" and old["fields"]["child"][0]["child_name"] == "Trẻ 0"
    assert old["attachments_expected"] == ["h.jpg"]
    new = c.get(f"/api/v1/submissions/{pq2}", auth=server.auth("tinh")).json()
    assert new["status"] == "current" and new["fields"]["hamlet"] == "Ấp 9"
    assert [v["instance_id"] for v in new["versions"]] == [pq1, pq2]
    assert [v["status"] for v in new["versions"]] == ["superseded", "current"]

    # Paging with the opaque cursor visits every record exactly once; ISO since filters by time.
    seen: list[str] = []
    url = "/api/v1/submissions?limit=1"
    while True:
        page = c.get(url, auth=server.auth("tinh")).json()
        seen += [i["instance_id"] for i in page["items"]]
        if not page["next"]:
            break
        url = f"/api/v1/submissions?limit=1&since={page['next']}"
    assert sorted(seen) == sorted([pq1, pq2, rg]) and len(seen) == 3
    future = c.get("/api/v1/submissions?since=2999-01-01T00:00:00Z", auth=server.auth("tinh")).json()
    assert future["items"] == []
    past = c.get("/api/v1/submissions?since=2000-01-01T00:00:00Z&form_id=hh_test", auth=server.auth("tinh"))
    assert len(past.json()["items"]) == 3
    bad = c.get("/api/v1/submissions?since=yesterday", auth=server.auth("tinh"))
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


def test_devices_last_contact_and_counts(server: Server) -> None:
    c = server.client
    c.get("/formList?deviceID=collect:quiet", auth=server.auth("ctv_pq"))  # contact, never submits
    _send(server, "ctv_pq", "collect:pq")
    _send(server, "ctv_pq", "collect:pq")
    _send(server, "ctv_rg", "collect:rg", district="899", commune="30742")
    assert c.get("/api/v1/devices", auth=server.auth("ctv_pq")).status_code == 403
    rows = {
        r["device_id"]: r for r in c.get("/api/v1/devices", auth=server.auth("huyen_pq")).json()["devices"]
    }
    assert set(rows) == {"collect:quiet", "collect:pq"}
    assert rows["collect:pq"]["submissions"] == 2 and rows["collect:pq"]["collaborator"] == "ctv_pq"
    assert rows["collect:pq"]["days_since_last_submission"] == 0
    assert rows["collect:quiet"]["submissions"] == 0 and rows["collect:quiet"]["last_contact"]
    assert rows["collect:quiet"]["last_submission"] is None
    everyone = c.get("/api/v1/devices", auth=server.auth("tinh")).json()["devices"]
    assert {r["device_id"] for r in everyone} == {"collect:quiet", "collect:pq", "collect:rg"}


def test_paging_through_many_records_received_in_the_same_second(server: Server) -> None:
    db = server.settings.submissions_db
    ids = [f"uuid:{i:04d}-{uuid.uuid4()}" for i in range(37)]
    docs = [{"_id": i, "type": "submission", "form_id": "hh_test", "received_at": "2026-11-29T09:00:00Z",
             "area": "31078", "org_unit": ["91", "911", "31078"]} for i in ids]  # fmt: skip
    docs.append({"_id": "uuid:later", "type": "submission", "form_id": "hh_test", "area": "31078",
                 "received_at": "2026-11-29T09:00:01Z"})  # fmt: skip
    server.couch.bulk_docs(db, docs)
    seen: list[str] = []
    url = "/api/v1/submissions?limit=7"
    for _ in range(20):
        page = server.client.get(url, auth=server.auth("huyen_pq")).json()
        seen += [i["instance_id"] for i in page["items"]]
        if not page["next"]:
            break
        url = f"/api/v1/submissions?limit=7&since={page['next']}"
    assert seen == sorted(ids) + ["uuid:later"]
