"""Our databases are admin-only on pouchdb-server too: children's data and password hashes stay private."""

from __future__ import annotations

import httpx

from core.couch import ADMIN_ONLY, Couch
from core.services import CouchProcess


def test_created_databases_refuse_anonymous_readers(couch_server: CouchProcess) -> None:
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    couch.ensure_db("sec_children")
    couch.create("sec_children", {"_id": "uuid:1", "xml": "<child/>"})
    anonymous = httpx.get(f"{couch_server.base_url}/sec_children/_all_docs?include_docs=true", timeout=10)
    assert anonymous.status_code in (401, 403), anonymous.text
    assert "uuid:1" not in anonymous.text
    assert couch.get("sec_children", "uuid:1") is not None  # the admin still reads


def test_existing_open_database_is_closed_and_a_deliberate_setting_kept(couch_server: CouchProcess) -> None:
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    couch.request("PUT", "sec_old", action="create", ok=(201, 412))  # made before this rule existed
    couch.ensure_db("sec_old")
    assert couch.request("GET", "sec_old/_security", action="read").json()["members"] == ADMIN_ONLY["members"]
    chosen = {"admins": {"names": [], "roles": []}, "members": {"names": ["ops"], "roles": []}}
    couch.put_security("sec_old", chosen)
    couch.ensure_db("sec_old")
    assert couch.request("GET", "sec_old/_security", action="read").json()["members"] == chosen["members"]
