"""The data-quality panel shows the edge nodes of the report's area, as they last reported to the province."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.couch import Couch
from core.services import CouchProcess
from core.stores import EDGES_DB, ensure_store
from tests.reports.conftest import ReportDB


def _edge_doc(area: str, waiting: int, last_success: datetime) -> dict[str, object]:
    iso = last_success.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "_id": f"edge:{area}",
        "area": area,
        "node_name": f"edge:{area}",
        "report": {
            "checked_at": iso,
            "central_reachable": True,
            "replications": {"submissions_up": {"state": "running", "waiting": waiting, "last_success": iso}},
        },
    }


def test_edges_in_the_quality_panel(report_db: ReportDB, couch_server: CouchProcess) -> None:
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    couch.ensure_db(EDGES_DB)
    ensure_store(couch, report_db.settings)  # the province store: submissions and their views
    now = datetime.now(UTC)
    for doc in (_edge_doc("912", 7, now - timedelta(hours=3)), _edge_doc("31108", 2, now)):
        if existing := couch.get(EDGES_DB, str(doc["_id"])):
            doc["_rev"] = existing["_rev"]
        couch.save(EDGES_DB, doc)
    db = ReportDB(
        report_db.settings.model_copy(
            update={
                "couchdb_url": couch_server.base_url,
                "couchdb_user": couch_server.user,
                "couchdb_password": couch_server.password,
            }
        ),
        report_db.url,
    )
    kien_hai = db.render(level="district", area="912").decode()
    assert 'data-edge="edge:912"' in kien_hai and 'data-edge="edge:31108"' in kien_hai  # commune of 912
    province = db.render(level="province", area="91").decode()
    assert 'data-edge="edge:912"' in province
    ha_tien = db.render(level="district", area="900").decode()
    assert "data-edge=" not in ha_tien and "Không có trạm biên nào" in ha_tien
    xlsx = db.render(level="district", area="912", fmt="xlsx")
    assert xlsx[:2] == b"PK"


def test_store_not_running_says_so_and_starts_nothing(report_db: ReportDB) -> None:
    html = report_db.render(level="province", area="91").decode()
    assert "Không đọc được trạng thái trạm biên" in html
    assert not (report_db.settings.var_dir / "couch").exists()
