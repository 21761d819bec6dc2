"""Edge ↔ province replication through the province's sync server (/sync/edge) with an enrolled edge's
credential, on two real pouchdb-servers: outage, every accepted record up, accounts, status, forms."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.couch import Couch
from core.settings import ROOT
from core.stores import FORMS_DB, edge_summary
from edge import replication as rep
from edge.status import check, render
from tests.edge.conftest import Pair, enrol, province_server, wait_until
from tests.edge.households import submission_doc
from tests.edge.netlink import serve_in_thread

AREA = "31108"        # Xã Hòn Tre, Kiên Hải (island)
OTHER = "31111"       # Xã Lại Sơn, the next island


def _ids(couch: Couch, db: str) -> list[str]:
    rows = couch.all_docs(db)["rows"]
    return [r["id"] for r in rows if not r["id"].startswith("_design/")]


def _bulk(couch: Couch, db: str, docs: list[dict[str, object]]) -> None:
    for i in range(0, len(docs), 100):
        res = couch.bulk_docs(db, docs[i:i + 100])
        assert all(r.get("ok") for r in res), res[:3]


def test_province_down_500_households_arrive_once(pair: Pair, tmp_path: Path) -> None:
    """Two stores, two sync servers, real OpenRosa submissions to the edge while the province is down."""
    from fastapi.testclient import TestClient

    from console.app import create_app
    from forms.build import build_all
    from forms.catalog import Catalog
    from simulator.client import OpenRosaClient, send_all
    from simulator.fill import fill, load_form
    from simulator.households import generate
    from sync_server.auth import Accounts

    built = tmp_path / "built"
    build_all(ROOT / "forms" / "xlsforms", built)
    es = pair.edge_settings.model_copy(update={"forms_build_dir": built})
    ps = pair.province_settings.model_copy(update={"forms_build_dir": built})
    edge, province = pair.edge_couch(), pair.province_couch()
    # The collaborator is created at the province; the edge learns the account by replication.
    token = enrol(pair, AREA, ("ctv_hontre",))
    Accounts(province, ps).add("cb_tinh", "tinh-pass", "province", "91")
    central = province_server(pair)
    rep.init_edge(es, AREA, central.__enter__(), token, local=edge)
    wait_until(lambda: edge.get(es.accounts_db, "user:ctv_hontre") is not None, timeout=30)
    assert edge.get(es.accounts_db, "user:cb_tinh") is None  # least privilege: no officer hashes on the edge

    pair.province.stop()
    form = Catalog(built).get("household_child_check")
    assert form is not None
    template = load_form(form.xml_bytes())
    households = [fill(template, hh, photo_bytes=1500) for hh in generate(500, seed=28)]
    with serve_in_thread(create_app(es)) as edge_server:
        outcomes = send_all(edge_server, "ctv_hontre", "mat-khau-123",
                            [(f, "collect:edge-test", "") for f in households], concurrency=4)
    assert [o.status for o in outcomes].count("accepted") == 500, {o.message for o in outcomes if not o.ok}
    ids = {f.instance_id for f in households}

    down = check(es, edge)
    up = {r.kind: r for r in down.replications}["submissions_up"]
    assert not down.central_reachable
    assert up.state == "error" and up.waiting == 500 and up.last_success is None
    assert up.last_error and "province" in up.last_error
    text = "\n".join(render(down, "vi"))
    assert "lỗi" in text and "500 phiếu chưa xác nhận" in text

    pair.province.start()
    province = pair.province_couch()
    took = wait_until(lambda: len(_ids(province, ps.submissions_db)) >= 500, timeout=120)
    time.sleep(2)  # anything extra (a duplicate or another area's doc) would land now
    got = _ids(province, ps.submissions_db)
    assert len(got) == len(set(got)) == 500 and set(got) == ids
    assert {d["received_by"] for d in (province.get(ps.submissions_db, i) for i in list(ids)[:20]) if d} \
        == {"edge:31108"}
    print(f"500 households reached the province {took:.1f}s after it came back")

    ok = check(es, edge)
    up = {r.kind: r for r in ok.replications}["submissions_up"]
    assert ok.central_reachable and up.state == "running" and up.waiting == 0 and up.last_success
    assert up.verified_seq is not None
    # The next check only looks at changes after the verified sequence: nothing to re-examine.
    again = {r.kind: r for r in check(es, edge).replications}["submissions_up"]
    assert again.checked == 0 and again.waiting == 0

    # Ingested and counted at the province like direct submissions.
    assert _ingested(ps, province) == (500, 500)
    # In town, the phone sends household 0 again, straight to the province's sync server: one record still.
    with serve_in_thread(create_app(ps)) as town_server, \
            OpenRosaClient(town_server, "ctv_hontre", "mat-khau-123") as phone:
        assert phone.submit(households[0], "collect:edge-test").status == "duplicate"
    assert len(_ids(province, ps.submissions_db)) == 500
    assert _ingested(ps, province) == (500, 500)

    # The province sees the edge: its report (replicated up) and the records it delivered.
    wait_until(lambda: (edge_summary(province, ps) or [{}])[0].get("backlog") == 0, timeout=30)
    (row,) = edge_summary(province, ps)
    assert row["node_name"] == "edge:31108" and row["received_at_province"] == 500
    assert row["state"] == "running" and row["lag_seconds"] is not None and not row["stale"]
    # The operator API shows the same, to province accounts only.
    Accounts(province, ps).add("ctv_x", "ctv-pass", "collaborator", AREA)
    client = TestClient(create_app(ps))
    r = client.get("/api/v1/edges", auth=("cb_tinh", "tinh-pass"))
    assert r.status_code == 200 and r.json()["edges"][0]["backlog"] == 0
    assert client.get("/api/v1/edges", auth=("ctv_x", "ctv-pass")).status_code == 403
    central.__exit__(None, None, None)


def _ingested(ps: object, province: Couch) -> tuple[int, int]:
    """Run the aggregator's follower at the province; (raw submissions, households) in SQL."""
    from sqlmodel import func, select

    from aggregator.db import session_scope
    from aggregator.follower import follow
    from aggregator.models import Household, RawSubmission

    stats = follow(ps, couch=province, budget_s=600)  # type: ignore[arg-type]  # caught up, even under load
    assert stats.quarantined == 0
    with session_scope(ps) as ses:  # type: ignore[arg-type]
        raw = ses.exec(select(func.count()).select_from(RawSubmission)).one()
        hh = ses.exec(select(func.count()).select_from(Household)).one()
    return int(raw), int(hh)


def test_record_arriving_both_ways_is_counted_once(pair: Pair) -> None:
    """A phone sent to the edge, then again in town to the province: one record, counted once."""
    from edge.conflicts import find_conflicts

    es, ps = pair.edge_settings, pair.province_settings
    edge, province = pair.edge_couch(), pair.province_couch()
    province.ensure_db(ps.submissions_db)
    _bulk(province, ps.submissions_db, [submission_doc(i, AREA, node="province") for i in range(30)])
    edge.ensure_db(es.submissions_db)
    _bulk(edge, es.submissions_db, [submission_doc(i, AREA, node="edge:31108") for i in range(40)])
    token = enrol(pair, AREA, (f"ctv_{AREA}_01",))
    with province_server(pair) as central:
        rep.init_edge(es, AREA, central, token, local=edge)
        wait_until(lambda: len(_ids(province, ps.submissions_db)) == 40, timeout=60)
        # The 30 the province already held count as delivered (same record, another revision).
        wait_until(lambda: {r.kind: r for r in check(es, edge).replications}["submissions_up"].waiting == 0,
                   30)
    assert _ingested(ps, province) == (40, 40)
    # Same instanceID and identical XML arriving twice is not an edit conflict.
    assert find_conflicts(province, ps) == []


def test_accounts_pulled_down_are_this_areas_collaborators_only(pair: Pair) -> None:
    es, ps = pair.edge_settings, pair.province_settings
    province = pair.province_couch()
    province.ensure_db(ps.accounts_db)
    accounts = [("ctv_hontre", "collaborator", AREA), ("ctv_laison", "collaborator", OTHER),
                ("cb_kienhai", "district", "912"), ("cb_tinh", "province", "91"),
                ("ctv_hontre2", "collaborator", AREA)]
    province.bulk_docs(ps.accounts_db, [{"_id": f"user:{n}", "type": "user", "name": n, "role": r, "area": a,
                                         "active": True, "digest_ha1": "x", "password_argon2": "x"}
                                        for n, r, a in accounts])
    edge = pair.edge_couch()
    token = enrol(pair, AREA)
    with province_server(pair) as central:
        rep.init_edge(es, AREA, central, token, local=edge)
        wait_until(lambda: len(_ids(edge, es.accounts_db)) >= 2, timeout=30)
        # A collaborator added later at the province arrives too (continuous pull).
        province.create(ps.accounts_db, {"_id": "user:ctv_hontre3", "type": "user", "name": "ctv_hontre3",
                                         "role": "collaborator", "area": AREA, "active": True})
        wait_until(lambda: "user:ctv_hontre3" in _ids(edge, es.accounts_db), timeout=30)
        time.sleep(1.5)
        # No officer, no other area, no edge credential (the edge's own account stays at the province).
        assert sorted(_ids(edge, es.accounts_db)) == ["user:ctv_hontre", "user:ctv_hontre2",
                                                       "user:ctv_hontre3"]
        st = {r.kind: r for r in check(es, edge).replications}
        assert st["accounts_down"].waiting == 0 and st["accounts_down"].state == "running"


def test_forms_published_at_the_province_reach_the_edge(pair: Pair) -> None:
    from edge import forms
    from forms.catalog import Catalog

    es, ps = pair.edge_settings, pair.province_settings
    _fake_build(ps.effective_forms_build_dir, "household_child_check", ["2026110101", "2026112901"])
    province, edge = pair.province_couch(), pair.edge_couch()
    assert len(forms.publish(province, ps)) == 2
    assert forms.publish(province, ps) == []  # unchanged: nothing rewritten
    token = enrol(pair, AREA)
    with province_server(pair) as central:
        rep.init_edge(es, AREA, central, token, local=edge)
        wait_until(lambda: len(_ids(edge, FORMS_DB)) == 2, timeout=30)
    versions = ("2026110101", "2026112901")
    assert sorted(forms.apply(edge, es)) == [f"household_child_check/{v}" for v in versions]
    assert forms.apply(edge, es) == []
    theirs, ours = Catalog(ps.effective_forms_build_dir), Catalog(es.effective_forms_build_dir)
    assert [(f.form_id, f.version, f.hash) for f in ours.current()] == \
        [(f.form_id, f.version, f.hash) for f in theirs.current()]
    mine, province_form = ours.get("household_child_check"), theirs.get("household_child_check")
    assert mine is not None and province_form is not None
    assert mine.xml_bytes() == province_form.xml_bytes()
    assert (mine.dir / "enketo.json").read_bytes() == (province_form.dir / "enketo.json").read_bytes()
    media = mine.media[0]
    assert media.path.read_bytes() == b"list_name,name,label\ncommune,31108,H\xc3\xb2n Tre\n"


def _fake_build(build: object, form_id: str, versions: list[str]) -> None:
    """A build tree as `carecheck forms build` leaves it (contracts §2)."""
    import hashlib
    from pathlib import Path

    root = Path(str(build)) / form_id
    for v in versions:
        d = root / v
        (d / "media").mkdir(parents=True)
        xml = f'<h:html xmlns:h="http://www.w3.org/1999/xhtml"><!-- {form_id} {v} --></h:html>'.encode()
        (d / "form.xml").write_bytes(xml)
        csv = "list_name,name,label\ncommune,31108,Hòn Tre\n".encode()
        (d / "media" / "itemsets.csv").write_bytes(csv)
        meta = {"form_id": form_id, "version": v, "title": "Kiểm tra hộ gia đình",
                "hash": "md5:" + hashlib.md5(xml).hexdigest(), "languages": ["vi", "en"], "n_questions": 40,
                "media": [{"filename": "itemsets.csv", "hash": "md5:" + hashlib.md5(csv).hexdigest()}]}
        (d / "form.json").write_text(json.dumps(meta), encoding="utf-8")
        (d / "enketo.json").write_text(json.dumps({"form": f"<form>{v}</form>", "model": "<model/>"}))
    (root / "current").write_text(versions[-1] + "\n", encoding="utf-8")


def test_init_is_idempotent_and_resumes(pair: Pair) -> None:
    es, ps = pair.edge_settings, pair.province_settings
    edge, province = pair.edge_couch(), pair.province_couch()
    token = enrol(pair, AREA, (f"ctv_{AREA}_01",))
    with province_server(pair) as central:
        rep.init_edge(es, AREA, central, token, local=edge)
        _bulk(edge, es.submissions_db, [submission_doc(i, AREA) for i in range(50)])
        wait_until(lambda: len(_ids(province, ps.submissions_db)) == 50, timeout=60)
        first = rep.replicator_docs(edge)
        time.sleep(1.1)  # a new generation stamp
        rep.init_edge(es, AREA, central, None, local=edge)  # the enrolled credential is kept
        second = rep.replicator_docs(edge)
        assert set(first) == set(second) == {"submissions_up", "accounts_down", "forms_down"}
        assert all(first[k]["carecheck"]["generation"] != second[k]["carecheck"]["generation"] for k in first)
        _bulk(edge, es.submissions_db, [submission_doc(i, AREA) for i in range(50, 60)])
        wait_until(lambda: len(_ids(province, ps.submissions_db)) == 60, timeout=60)
        # Credentials are in headers of our own docs only, never in a URL or the config.
        for doc in second.values():
            assert "@" not in doc["source"]["url"] and "@" not in doc["target"]["url"]
        cfg = rep.read_config(edge)
        assert cfg is not None and cfg.node_name == "edge:31108" and cfg.central_url == central
        assert cfg.edge_id == token.split(":")[0]
        assert token.split(":")[1] not in (es.var_dir / "edge.json").read_text()


def test_rapid_restarts_leave_every_replication_running(pair: Pair) -> None:
    """`sync-now` restarts the replications. Restarting again while the last ones wind down must neither
    conflict with the replicator's own writes to its docs (409), nor leave a doc marked "completed" with its
    replication forgotten, nor leave a new doc taken for a duplicate of a deleted one and never started
    (pouchdb-server quirks: each generation has an id and a nonce of its own)."""
    es = pair.edge_settings
    edge, province = pair.edge_couch(), pair.province_couch()
    central = province_server(pair)
    rep.init_edge(es, AREA, central.__enter__(), enrol(pair, AREA, (f"ctv_{AREA}_01",)), local=edge)
    for _ in range(4):  # within a second or two of `edge init`, as an operator's `sync-now` can be
        rep.restart(edge)
        time.sleep(0.3)
    docs = rep.replicator_docs(edge)
    assert set(docs) == {"submissions_up", "accounts_down", "forms_down"}
    time.sleep(3)  # the wound-down replications' last writes land
    states = {k: d.get("_replication_state") for k, d in rep.replicator_docs(edge).items()}
    assert "completed" not in states.values(), states
    edge.bulk_docs(es.submissions_db, [submission_doc(900 + i, AREA) for i in range(3)])
    wait_until(
        lambda: all(
            province.get(pair.province_settings.submissions_db, d["_id"]) is not None
            for d in [submission_doc(900 + i, AREA) for i in range(3)]
        ),
        timeout=60,
    )
    central.__exit__(None, None, None)


def test_a_photo_handed_in_after_the_record_went_up_follows_it(pair: Pair) -> None:
    """A split upload at the edge: the record went up with its first photo; the later part's photo follows it
    (the province adds what it lacks, replaces nothing)."""
    import base64

    es, ps = pair.edge_settings, pair.province_settings
    edge, province = pair.edge_couch(), pair.province_couch()
    edge.ensure_db(es.submissions_db)
    doc = submission_doc(0, AREA, node="edge:31108")
    iid = str(doc["_id"])
    part1 = base64.b64encode(b"part 1").decode()
    doc["_attachments"] = {"house.jpg": {"content_type": "image/jpeg", "data": part1}}
    doc["attachments_expected"] = ["card.jpg", "house.jpg"]
    _bulk(edge, es.submissions_db, [doc])
    token = enrol(pair, AREA, (f"ctv_{AREA}_01",))
    with province_server(pair) as central:
        rep.init_edge(es, AREA, central, token, local=edge)
        wait_until(lambda: province.get(ps.submissions_db, iid) is not None, timeout=60)
        assert list(province.get(ps.submissions_db, iid)["_attachments"]) == ["house.jpg"]  # type: ignore[index]
        held = edge.get(es.submissions_db, iid)
        assert held is not None
        edge.put_attachment(es.submissions_db, iid, str(held["_rev"]), "card.jpg", "image/jpeg", b"part 2")
        wait_until(lambda: province.get_attachment(ps.submissions_db, iid, "card.jpg") == b"part 2", 60)
        wait_until(lambda: {r.kind: r for r in check(es, edge).replications}["submissions_up"].waiting == 0,
                   30)
    assert province.get_attachment(ps.submissions_db, iid, "house.jpg") == b"part 1"
