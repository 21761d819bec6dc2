"""Store down: 503 + Retry-After, nothing half-stored; after restart the same record is accepted once."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from console.app import create_app
from core.couch import Couch
from core.services import CouchProcess
from tests.conftest import make_settings
from tests.sync_server.conftest import PASSWORD, add_accounts
from tests.sync_server.helpers import instance, parts, write_form


def test_503_while_store_is_down_then_accepted(tmp_path: Path, fresh_couch: CouchProcess) -> None:
    settings = make_settings(tmp_path, fresh_couch)
    write_form(settings.effective_forms_build_dir)
    couch = Couch(fresh_couch.url, fresh_couch.user, fresh_couch.password)
    add_accounts(settings, couch)
    auth = httpx.DigestAuth("ctv_pq", PASSWORD)
    before, during = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    photo = b"\xff\xd8" + b"p" * 5000
    with TestClient(create_app(settings)) as client:
        assert (
            client.post("/submission", files=parts(instance(instance_id=before)), auth=auth).status_code
            == 201
        )
        fresh_couch.stop()
        xml = instance(instance_id=during, house_photo="h.jpg")
        r = client.post("/submission", files=parts(xml, {"h.jpg": photo}), auth=auth)
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) > 0 and r.headers["x-openrosa-version"] == "1.0"
        assert "gửi lại sau" in r.text and b"OpenRosaResponse" in r.content
        assert client.get("/api/v1/submissions", auth=httpx.DigestAuth("tinh", PASSWORD)).status_code == 503

        # A server started while the store is down comes up, answers 503, and recovers by itself.
        with TestClient(create_app(settings)) as cold:
            r = cold.head("/submission", auth=auth)
            assert r.status_code == 503 and "retry-after" in r.headers

            fresh_couch.start()
            r = client.post("/submission", files=parts(xml, {"h.jpg": photo}), auth=auth)
            assert r.status_code == 201, r.text
            assert cold.head("/submission", auth=auth).status_code == 204
            assert cold.post("/submission", files=parts(xml, {"h.jpg": photo}), auth=auth).status_code == 202
    ids = [r["id"] for r in couch.all_docs(settings.submissions_db)["rows"] if not r["id"].startswith("_")]
    assert sorted(ids) == sorted([before, during])
    assert couch.get_attachment(settings.submissions_db, during, "h.jpg") == photo
