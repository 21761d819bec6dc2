"""The submissions design doc's validate_doc_update (installed on Apache CouchDB), run by node as CouchDB runs
it, and why pouchdb-server does not get it (it rewrites replicated revisions; checked on a real one)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core.couch import Couch
from core.services import CouchProcess
from core.stores import DESIGN_DOC, design_doc, ensure_store
from tests.conftest import make_settings

NODE = shutil.which("node")
OLD = {
    "_id": "uuid:1",
    "_rev": "1-a",
    "type": "submission",
    "xml_sha256": "h1",
    "submitted_by": "ctv_a",
    "area": "31078",
    "form_id": "f",
    "deprecated_id": None,
}
ADMIN = {"name": "admin", "roles": ["_admin"]}
USER = {"name": "someone", "roles": []}
CASES = [
    ("create", dict(OLD, _rev=None), None, ADMIN, None),
    ("attachment added (split upload)", dict(OLD, _attachments={"p.jpg": {}}), OLD, ADMIN, None),
    ("same record arriving another way", dict(OLD, received_by="edge:31108"), OLD, ADMIN, None),
    ("other xml under the id", dict(OLD, xml_sha256="h2"), OLD, ADMIN, "xml_sha256"),
    ("another author", dict(OLD, submitted_by="ctv_b"), OLD, ADMIN, "submitted_by"),
    ("another area", dict(OLD, area="30742"), OLD, ADMIN, "area"),
    ("turned into an edit", dict(OLD, deprecated_id="uuid:9"), OLD, ADMIN, "deprecated_id"),
    ("deleted by an admin", {"_id": "uuid:1", "_deleted": True}, OLD, ADMIN, None),
    ("deleted by a non-admin", {"_id": "uuid:1", "_deleted": True}, OLD, USER, "province deletes"),
    ("recreated after a deletion", dict(OLD, xml_sha256="h3"), dict(OLD, _deleted=True), ADMIN, None),
]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_validate_doc_update_rules() -> None:
    script = (
        f"const vdu = ({DESIGN_DOC['validate_doc_update']});\n"
        f"const cases = {json.dumps([[n, new, old, ctx] for n, new, old, ctx, _ in CASES])};\n"
        "const out = cases.map(([name, nd, od, ctx]) => { try { vdu(nd, od, ctx, {}); return null; }"
        " catch (e) { return e.forbidden || String(e); } });\n"
        "console.log(JSON.stringify(out));\n"
    )
    res = subprocess.run([str(NODE), "-e", script], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    for (name, *_, want), got in zip(CASES, json.loads(res.stdout), strict=True):
        if want is None:
            assert got is None, f"{name}: refused ({got})"
        else:
            assert got and want in got, f"{name}: {got!r}"


def test_pouchdb_server_gets_no_validate_doc_update(
    tmp_path: Path, couch_server: CouchProcess, couch: Couch
) -> None:
    """pouchdb-validation overwrites a replicated doc's _revisions with the current winner's: a second branch
    of an existing record is dropped. So the embedded store runs without it (the write rule still holds)."""
    s = make_settings(tmp_path, couch_server)
    assert "validate_doc_update" not in design_doc(couch)
    ensure_store(couch, s)
    assert "validate_doc_update" not in (couch.get(s.submissions_db, "_design/carecheck") or {})
    # The finding, reproduced: with the function installed, a replicated branch does not land.
    probe = f"{s.submissions_db}_vdu_probe"
    couch.ensure_db(probe)
    couch.put_design(probe, {"_id": "_design/v", "validate_doc_update": "function (n, o, u) {}"})
    couch.bulk_docs(probe, [{"_id": "x", "v": 1, "_rev": "1-aaaa"}], new_edits=False)
    couch.bulk_docs(probe, [{"_id": "x", "v": 2, "_rev": "1-bbbb"}], new_edits=False)
    leaves = couch.request(
        "GET",
        f"{probe}/x",
        params={"open_revs": "all"},
        headers={"Accept": "application/json"},
        action="read leaves",
    ).json()
    revs = sorted(d["ok"]["_rev"] for d in leaves if "ok" in d)
    couch.delete_db(probe)
    assert revs != ["1-aaaa", "1-bbbb"], "pouchdb-server kept both branches: the VDU could be installed there"
