"""A real PouchDB client (pouchdb-node) plays a phone against the sync server's /sync/submissions proxy."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.couch import Couch
from core.services import CouchProcess, free_port
from core.settings import ROOT
from core.stores import FORMS_DB
from tests.conftest import make_settings
from tests.edge.households import submission_doc
from tests.sync_server.helpers import write_form

AREA, OTHER = "31108", "31111"
NODE = shutil.which("node")


@pytest.fixture()
def server(tmp_path: Path, couch_server: CouchProcess) -> Iterator[tuple[Couch, object, int]]:
    uvicorn = pytest.importorskip("uvicorn")
    settings = make_settings(tmp_path, couch_server)
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    port = free_port()
    holder: dict[str, object] = {}

    def start() -> None:
        from console.app import create_app

        cfg = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        srv = uvicorn.Server(cfg)
        holder["srv"] = srv
        srv.run()

    holder["start"] = start
    yield couch, (settings, holder), port
    srv = holder.get("srv")
    if srv is not None:
        srv.should_exit = True  # type: ignore[attr-defined]
        time.sleep(0.5)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_pouchdb_phone_syncs_own_area_only(server: tuple[Couch, object, int], tmp_path: Path) -> None:
    from core.stores import ensure_store
    from sync_server.auth import Accounts

    couch, (settings, holder), port = server  # type: ignore[misc]
    ensure_store(couch, settings)
    Accounts(couch, settings).add("ctv_hontre", "secret-pw", "collaborator", AREA)
    write_form(settings.effective_forms_build_dir, "household_child_check", "2026112901")  # the phone's form
    mine = [submission_doc(i, AREA) for i in range(3)]
    theirs = [submission_doc(i, OTHER) for i in range(3)]
    couch.bulk_docs(settings.submissions_db, mine + theirs)
    couch.delete_db(FORMS_DB)
    couch.ensure_db(FORMS_DB)
    form = {"_id": "form:household_child_check:2026112901", "type": "form", "current": True}
    couch.bulk_docs(FORMS_DB, [form, {"_id": "_design/x", "views": {}}])

    # The phone starts offline: the server is not up yet.
    proc = subprocess.Popen([NODE, str(Path(__file__).with_name("device.js")), f"http://127.0.0.1:{port}",
                             "ctv_hontre", "secret-pw", str(tmp_path), AREA, theirs[0]["_id"],
                             mine[0]["_id"]],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    threading.Thread(target=holder["start"], daemon=True).start()  # type: ignore[index]
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])

    assert res["polls"] > 0, "the phone should have found the server offline first"
    assert res["push"] == {"docs_written": 5, "doc_write_failures": 1}
    assert res["again"]["docs_written"] == 0
    stored = {r["id"] for r in couch.all_docs(settings.submissions_db)["rows"]}
    assert set(res["own"]) <= stored and res["foreign"] not in stored
    # Pulling sees the phone's own records only: not another area's, not a colleague's in the same area.
    pulled = {p["id"]: p["area"] for p in res["pulled"]}
    assert set(pulled) == set(res["own"])
    assert set(pulled.values()) == {AREA}
    # Others' ids pushed as new docs, as a forged higher revision (new_edits:false), and an edit superseding
    # a colleague's record: every one refused, the store unchanged.
    assert res["cheat"] == {"docs_written": 0, "doc_write_failures": 3}, res["cheat"]
    assert res["forged"] == ["forbidden"]
    for d in (theirs[0], mine[0]):
        now = couch.get(settings.submissions_db, str(d["_id"]), conflicts=True)
        assert now is not None and now["xml_sha256"] == d["xml_sha256"] and not now.get("_conflicts")
    assert not couch.view(settings.submissions_db, "carecheck", "by_deprecated", key=mine[0]["_id"])["rows"]
    assert res["direct_other"] == 404 and res["wrong_password"] == 401
    assert res["form_ids"] == ["form:household_child_check:2026112901"]
    assert res["form_push"] == 403, res["form_push"]
    # The phone's checkpoint (kept in the account's own namespace) holds: a second push reads nothing.
    assert res["again"]["docs_read"] == 0
