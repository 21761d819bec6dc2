"""Group commit on intake, through a real uvicorn server and a real store, phones sending at the same instant.

Every duplicate/edit/409 rule holds when the records meet in one gathering window: a resend racing its
original, two parts of one record, two different records under one instanceID, an edit of one's own record
and of someone else's, a deleted id. A batch whose answer is lost acknowledges nothing, and nothing is lost:
the resends are acknowledged as already received, each record stored once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from console.app import create_app
from core.couch import Couch
from core.services import CouchProcess
from core.settings import Settings
from tests.conftest import make_settings
from tests.edge.netlink import serve_in_thread
from tests.support.faultproxy import FaultProxy, Faults
from tests.sync_server.conftest import PASSWORD, add_accounts
from tests.sync_server.helpers import instance, parts, write_form

Send = tuple[str, bytes, dict[str, bytes]]  # (account, xml, attachments)


def _settings(tmp_path: Path, couch: CouchProcess, **over: object) -> Settings:
    s = make_settings(tmp_path, couch, intake_batch_window_ms=300, **over)
    write_form(s.effective_forms_build_dir)
    add_accounts(s, Couch(couch.url, couch.user, couch.password))
    return s


def _at_once(base: str, sends: list[Send]) -> list[httpx.Response]:
    """Each send from its own phone (client), released together by a barrier; responses in input order."""
    barrier = threading.Barrier(len(sends))
    out: list[httpx.Response | None] = [None] * len(sends)

    def phone(k: int) -> None:
        user, xml, files = sends[k]
        with httpx.Client(base_url=base, auth=httpx.DigestAuth(user, PASSWORD), timeout=60) as c:
            c.head("/submission")  # Digest handshake first, so the POSTs themselves start together
            barrier.wait()
            out[k] = c.post("/submission", files=parts(xml, files))

    threads = [threading.Thread(target=phone, args=(k,)) for k in range(len(sends))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


@pytest.fixture()
def served(tmp_path: Path, couch_server: CouchProcess) -> Iterator[tuple[str, Settings, Callable[[], int]]]:
    s = _settings(tmp_path, couch_server)
    app = create_app(s)
    with serve_in_thread(app) as base:
        yield base, s, lambda: int(app.state.ctx.submissions.commit.batches)


def _ids(couch: Couch, db: str) -> list[str]:
    return [r["id"] for r in couch.all_docs(db)["rows"] if not r["id"].startswith("_design/")]


def test_sixteen_phones_at_once_share_batches_and_each_record_is_stored_once(
    served: tuple[str, Settings, Callable[[], int]], couch_server: CouchProcess,
) -> None:
    base, s, batches = served
    xmls = [instance(hamlet=f"Ấp {k}", house_photo="h.jpg") for k in range(16)]
    sends: list[Send] = [("ctv_pq", x, {"h.jpg": b"\xff\xd8" + bytes([k]) * 3000})
                         for k, x in enumerate(xmls)]
    got = _at_once(base, sends)
    assert [r.status_code for r in got] == [201] * 16, [r.text[:200] for r in got]
    assert batches() < 16, "concurrent records were written one by one"
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    stored = _ids(couch, s.submissions_db)
    assert len(stored) == len(set(stored)) == 16
    for k in (0, 15):
        iid = xmls[k].split(b"<instanceID>")[1].split(b"<")[0].decode()
        doc = couch.get(s.submissions_db, iid) or {}
        assert doc["submitted_by"] == "ctv_pq" and doc["area"] == "31078"
        assert couch.get_attachment(s.submissions_db, iid, "h.jpg") == b"\xff\xd8" + bytes([k]) * 3000


def test_every_duplicate_and_edit_rule_holds_inside_a_window(
    served: tuple[str, Settings, Callable[[], int]], couch_server: CouchProcess,
) -> None:
    base, s, batches = served
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    # Stored before: ctv_pq's own record (edited below, by its author and by someone else) and a deleted one.
    own, deleted = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    (first,) = _at_once(base, [("ctv_pq", instance(instance_id=own), {})])
    (gone,) = _at_once(base, [("ctv_pq", instance(instance_id=deleted), {})])
    assert first.status_code == gone.status_code == 201
    couch.delete(s.submissions_db, deleted, str((couch.get(s.submissions_db, deleted) or {})["_rev"]))

    resent, split, twice = (f"uuid:{uuid.uuid4()}" for _ in range(3))
    original = instance(instance_id=resent, house_photo="h.jpg")
    two_parts = instance(instance_id=split, house_photo="h.jpg", card_photos=["c.jpg"])
    edit_own, edit_foreign = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    plain = [("ctv_pq", instance(hamlet=f"Ấp {k}"), {}) for k in range(4)]
    sends: list[Send] = [
        ("ctv_pq", original, {"h.jpg": b"photo-1"}),  # 0: a resend racing its original
        ("ctv_pq", original, {"h.jpg": b"photo-1"}),  # 1
        ("ctv_pq", two_parts, {"h.jpg": b"house"}),  # 2: two parts of one record
        ("ctv_pq", two_parts, {"c.jpg": b"card"}),  # 3
        ("ctv_pq", instance(instance_id=twice, hamlet="Ấp Một"), {}),  # 4: two records, one instanceID
        ("ctv_pq", instance(instance_id=twice, hamlet="Ấp Hai"), {}),  # 5
        ("ctv_pq", instance(instance_id=edit_own, deprecated_id=own, hamlet="Sửa"), {}),  # 6: own edit
        ("ctv_rg", instance(instance_id=edit_foreign, deprecated_id=own, commune="30742"), {}),  # 7: foreign
        ("ctv_pq", instance(instance_id=deleted), {}),  # 8: a deleted record's id
        *plain,  # 9..12
    ]
    before = batches()
    got = [r.status_code for r in _at_once(base, sends)]
    assert batches() - before < len(sends) - 2, "the window did not gather"

    assert sorted(got[0:2]) == [201, 202]
    assert couch.get_attachment(s.submissions_db, resent, "h.jpg") == b"photo-1"
    assert got[2:4] == [201, 201]  # the second part is "already received; 1 attachment added"
    assert set((couch.get(s.submissions_db, split) or {})["_attachments"]) == {"h.jpg", "c.jpg"}
    assert sorted(got[4:6]) == [201, 409]
    kept = (couch.get(s.submissions_db, twice) or {})["xml"]
    assert ("Ấp Một" in kept) == (got[4] == 201) and ("Ấp Hai" in kept) == (got[5] == 201)
    assert got[6] == 201 and (couch.get(s.submissions_db, edit_own) or {})["deprecated_id"] == own
    assert got[7] == 403 and couch.get(s.submissions_db, edit_foreign) is None
    assert got[8] == 409 and couch.get(s.submissions_db, deleted) is None
    assert got[9:] == [201] * 4
    stored = _ids(couch, s.submissions_db)
    assert len(stored) == len(set(stored)) == 1 + 3 + 1 + 4  # own, resent/split/twice, the edit, plain


def test_a_batch_whose_answer_is_lost_acknowledges_nothing_and_loses_nothing(
    tmp_path: Path, couch_server: CouchProcess,
) -> None:
    """The store applies the batch but the answer never reaches the server: every phone hears 503, none 201;
    sent again, each record is "already received" (202) and stored once."""
    faults = Faults(lost=0.0, only_methods=("POST",))
    with FaultProxy(upstream_port=int(couch_server.base_url.rsplit(":", 1)[1]), faults=faults) as proxy:
        s = _settings(tmp_path, couch_server, couchdb_url=proxy.url)
        xmls = [instance(hamlet=f"Ấp {k}", house_photo="h.jpg") for k in range(8)]
        sends: list[Send] = [("ctv_pq", x, {"h.jpg": b"p" * 2000}) for x in xmls]
        with serve_in_thread(create_app(s)) as base:
            ready = httpx.head(f"{base}/submission", auth=httpx.DigestAuth("ctv_pq", PASSWORD))
            assert ready.status_code == 204  # the store is set up; from now on every POST's answer is lost
            faults.lost = 1.0
            lost = _at_once(base, sends)
            assert [r.status_code for r in lost] == [503] * 8, [r.text[:200] for r in lost]
            assert all(b"OpenRosaResponse" in r.content and "retry-after" in r.headers for r in lost)
            assert proxy.counts["lost"] >= 1
            couch = Couch(couch_server.url, couch_server.user, couch_server.password)
            assert len(_ids(couch, s.submissions_db)) == 8  # applied by the store, unacknowledged
            faults.lost = 0.0
            again = _at_once(base, sends)
            assert [r.status_code for r in again] == [202] * 8, [r.text[:200] for r in again]
        assert len(_ids(couch, s.submissions_db)) == 8
