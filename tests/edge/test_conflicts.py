"""Edits made in two places: every version kept, the winner picked by the documented rule, CLI listing."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from core.couch import Couch
from core.services import CouchProcess
from core.settings import ROOT
from edge.conflicts import find_conflicts, form_end
from tests.conftest import make_settings
from tests.edge.households import submission_doc

AREA = "31108"


def test_forked_edits_and_couch_conflicts(tmp_path: Path, couch_server: CouchProcess, couch: Couch) -> None:
    s = make_settings(tmp_path, couch_server)
    couch.ensure_db(s.submissions_db)
    original = submission_doc(1, AREA)
    # Edited on the island (later end time) and, separately, in town (earlier end time).
    island = submission_doc(2, AREA, node="edge:31108", deprecated_id=original["_id"],
                            end=datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    town = submission_doc(3, AREA, node="province", deprecated_id=original["_id"],
                          end=datetime(2026, 11, 24, 16, 0, tzinfo=UTC))
    # A linear edit chain elsewhere is not a conflict.
    other = submission_doc(4, AREA)
    other_edit = submission_doc(5, AREA, deprecated_id=other["_id"])
    couch.bulk_docs(s.submissions_db, [original, island, town, other, other_edit])
    # The same instanceID taken with different XML by two servers: two leaf revisions after replication.
    a = submission_doc(6, AREA, node="edge:31108", end=datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    b = submission_doc(7, AREA, node="province", end=datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    b["_id"] = a["_id"]
    couch.bulk_docs(s.submissions_db, [dict(a, _rev="1-aaaa"), dict(b, _rev="1-ffff")], new_edits=False)

    groups = {g.kind: g for g in find_conflicts(couch, s)}
    assert set(groups) == {"forked_edit", "couch_conflict"}
    fork = groups["forked_edit"]
    assert fork.record == original["_id"] and {v.id for v in fork.versions} == {island["_id"], town["_id"]}
    assert fork.winner.id == island["_id"]
    assert str(form_end(str(island["xml"]))).startswith("2026-11-25T09:00")
    cc = groups["couch_conflict"]
    assert cc.record == a["_id"] and {v.rev for v in cc.versions} == {"1-aaaa", "1-ffff"}
    # CouchDB's own winner is 1-ffff (highest rev hash); the rule picks the later form end time: 1-aaaa.
    assert cc.winner.rev == "1-aaaa"
    # Every version is still stored.
    assert couch.get(s.submissions_db, a["_id"], rev="1-ffff") is not None
    assert couch.get(s.submissions_db, town["_id"]) is not None

    env = dict(os.environ, CARECHECK_COUCHDB_URL=couch_server.base_url, CARECHECK_COUCHDB_USER="admin",
               CARECHECK_COUCHDB_PASSWORD="admin", CARECHECK_SUBMISSIONS_DB=s.submissions_db,
               CARECHECK_VAR_DIR=str(tmp_path / "var"))
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "carecheck"), "conflicts"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "2 phiếu bị sửa ở hai nơi" in out.stdout and f"CHỌN {island['_id']}" in out.stdout
