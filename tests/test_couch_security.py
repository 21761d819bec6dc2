"""Our databases are admin-only on pouchdb-server too: children's data and password hashes stay private."""

from __future__ import annotations

from pathlib import Path

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


def test_settings_repr_carries_no_secret(tmp_path: Path) -> None:
    """A Settings object that ends up in a log line or traceback shows no password or key."""
    from core.settings import Settings

    s = Settings(
        var_dir=tmp_path,
        couchdb_password="pw-couch-7",
        database_url="postgresql+psycopg://u:pw-sql-7@db/x",
        broker_url="redis://:pw-broker-7@r:6379/0",
        result_backend="redis://:pw-backend-7@r:6379/1",
    )
    for text in (repr(s), str(s)):
        assert not any(p in text for p in ("pw-couch-7", "pw-sql-7", "pw-broker-7", "pw-backend-7")), text
