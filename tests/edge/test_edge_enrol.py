"""An enrolled edge (no province admin secret) on two real stores and two real sync servers.

The edge takes households of its own area and of others while the province is down; when it returns the
province holds exactly every accepted record once; `edge revoke` at the province stops its pushes and pulls
at once, and `edge status` on the edge says so. Also: upgrading an edge set up with the province admin's
credentials scrubs them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.couch import Couch
from core.services import start_pouchdb
from core.settings import ROOT
from core.stores import edge_summary
from edge import replication as rep
from edge.status import check, render
from tests.conftest import make_settings
from tests.edge.conftest import Pair, enrol, province_server, wait_until
from tests.edge.households import submission_doc
from tests.edge.netlink import serve_in_thread

AREA = "31108"                      # Xã Hòn Tre, Kiên Hải (island)
PROVINCE_SECRET = "tinh-admin-K3y-9f2e"  # the province store's admin password: must never reach the edge


@pytest.fixture()
def secret_pair(tmp_path: Path) -> Iterator[Pair]:
    """Like ``pair``, but the province store's admin password is one the test can look for on the edge."""
    edge = start_pouchdb(tmp_path / "edge-couch", user="admin", password="admin")
    province = start_pouchdb(tmp_path / "province-couch", user="admin", password=PROVINCE_SECRET)
    try:
        (tmp_path / "edge").mkdir()
        (tmp_path / "province").mkdir()
        built = tmp_path / "built"
        es = make_settings(tmp_path / "edge", edge, node_name=f"edge:{AREA}", forms_build_dir=built)
        ps = make_settings(tmp_path / "province", province, submissions_db=es.submissions_db,
                           accounts_db=es.accounts_db, forms_build_dir=built)
        yield Pair(edge, province, es, ps)
    finally:
        edge.stop()
        province.stop()


def _ids(couch: Couch, db: str) -> list[str]:
    return [r["id"] for r in couch.all_docs(db)["rows"] if not r["id"].startswith("_design/")]


def _edge_dump(pair: Pair) -> str:
    """Everything the edge's store and var dir hold, old `_replicator` revisions included."""
    edge = pair.edge_couch()
    out = []
    for db in edge.request("GET", "_all_dbs", action="list").json():
        for row in edge.all_docs(db, include_docs=True)["rows"]:
            out.append(json.dumps(row))
            if db == "_replicator":
                revs = edge.request("GET", f"_replicator/{row['id']}", params={"revs_info": "true"},
                                    action="revs", ok=(200, 404)).json().get("_revs_info", [])
                for info in revs:
                    old = edge.request("GET", f"_replicator/{row['id']}", params={"rev": info["rev"]},
                                       action="old rev", ok=(200, 404))
                    out.append(old.text)
    for path in pair.edge_settings.var_dir.rglob("*"):
        if path.is_file():
            out.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(out)


def _leaks(text: str) -> bool:
    secret_b64 = base64.b64encode(f"admin:{PROVINCE_SECRET}".encode()).decode()
    return PROVINCE_SECRET in text or secret_b64 in text


def test_enrolled_edge_delivers_every_record_once_and_revoke_stops_it(secret_pair: Pair) -> None:
    from console.app import create_app
    from edge import forms as edge_forms
    from forms.build import build_all
    from forms.catalog import Catalog
    from simulator.client import send_all
    from simulator.fill import fill, load_form
    from simulator.households import generate
    from sync_server.auth import Accounts
    from sync_server.edges import revoke

    pair = secret_pair
    es, ps = pair.edge_settings, pair.province_settings
    edge, province = pair.edge_couch(), pair.province_couch()
    build_all(ROOT / "forms" / "xlsforms", ps.effective_forms_build_dir)
    token = enrol(pair, AREA, ("ctv_hontre",))
    Accounts(province, ps).add("cb_tinh", "tinh-pass", "province", "91")
    Accounts(province, ps).add("cb_kienhai", "huyen-pass", "district", "912")
    Accounts(province, ps).add("ctv_laison", "mat-khau-123", "collaborator", "31111")
    assert edge_forms.publish(province, ps)

    with province_server(pair) as central:
        rep.init_edge(es, AREA, central, token, local=edge)
        assert not _leaks(_edge_dump(pair))
        # Down come the published forms and this area's collaborators, stripped to what auth needs.
        wait_until(lambda: edge.get(es.accounts_db, "user:ctv_hontre") is not None, timeout=30)
        wait_until(lambda: len(_ids(edge, "carecheck_forms")) >= 1, timeout=30)
        time.sleep(1.5)
        assert _ids(edge, es.accounts_db) == ["user:ctv_hontre"]  # no officer, no other area, no edge
        pulled = edge.get(es.accounts_db, "user:ctv_hontre") or {}
        assert set(pulled) - {"_id", "_rev"} == {"type", "name", "role", "area", "active", "password_argon2",
                                                 "digest_ha1"}
        assert {r.kind: r for r in check(es, edge).replications}["forms_down"].waiting == 0

        # The province goes down; the island keeps working.
        pair.province.stop()
        template = load_form((Catalog(ps.effective_forms_build_dir).get("household_child_check")
                              or pytest.fail("no form")).xml_bytes())
        households = [fill(template, hh, photo_bytes=800) for hh in generate(40, seed=11)]
        with serve_in_thread(create_app(es)) as edge_server:
            outcomes = send_all(edge_server, "ctv_hontre", "mat-khau-123",
                                [(f, "collect:hontre", "") for f in households], concurrency=3)
            assert [o.status for o in outcomes].count("accepted") == 40, {o.message for o in outcomes}
            accepted = {f.instance_id for f in households}
            communes = {d.get("org_unit", [None] * 3)[2]
                        for d in (edge.get(es.submissions_db, i) for i in accepted) if d}
            assert AREA in communes or len(communes) > 1
            assert communes - {AREA}, "households of other areas were accepted at the edge too"

            down = check(es, edge)
            up = {r.kind: r for r in down.replications}["submissions_up"]
            assert not down.central_reachable and up.waiting == 40 and up.state == "error"

            pair.province.start()
            province = pair.province_couch()
            wait_until(lambda: len(_ids(province, ps.submissions_db)) >= 40, timeout=120)
            time.sleep(2)
            got = _ids(province, ps.submissions_db)
            assert len(got) == len(set(got)) == 40 and set(got) == accepted
            docs = [province.get(ps.submissions_db, i) or {} for i in got]
            assert {d["received_by"] for d in docs} == {f"edge:{AREA}"}
            assert {(d["submitted_by"], d["area"]) for d in docs} == {("ctv_hontre", AREA)}
            ok = check(es, edge)
            up = {r.kind: r for r in ok.replications}["submissions_up"]
            assert ok.central_reachable and ok.refused is None and up.waiting == 0

            (row,) = edge_summary(province, ps)
            assert row["credential"] == "active" and row["edge_id"] == token.split(":")[0]
            # Revoked at the province: from the next request on, nothing goes up or comes down.
            assert revoke(province, ps, area=AREA)
            assert edge_summary(province, ps)[0]["credential"] == "revoked"
            late = fill(template, generate(41, seed=11)[40], photo_bytes=800)
            (o,) = send_all(edge_server, "ctv_hontre", "mat-khau-123", [(late, "collect:hontre", "")])
            assert o.status == "accepted"
            Accounts(province, ps).add("ctv_hontre2", "mat-khau-123", "collaborator", AREA)
            time.sleep(6)
            assert province.get(ps.submissions_db, late.instance_id) is None
            assert edge.get(es.accounts_db, "user:ctv_hontre2") is None
            st = check(es, edge)
            up = {r.kind: r for r in st.replications}["submissions_up"]
            assert st.refused and "thu hồi" in st.refused and "revoked" in st.refused
            assert up.state == "error" and up.waiting == 1
            lines = render(st, "en")
            assert any(line.startswith("!! ") and "revoked" in line and "thu hồi" in line for line in lines)
            auth = rep.central_auth(edge) or ""
            r = httpx.get(f"{central}/sync/edge/forms/_changes", headers={"Authorization": auth})
            assert r.status_code == 403 and "revoked" in r.json()["reason"]

            # Enrolled again with a new secret: the replications resume, nothing accepted meanwhile is lost.
            rep.init_edge(es, AREA, central, enrol(pair, AREA), local=edge)
            wait_until(lambda: province.get(ps.submissions_db, late.instance_id) is not None, timeout=60)
            wait_until(lambda: edge.get(es.accounts_db, "user:ctv_hontre2") is not None, timeout=30)
            again = check(es, edge)
            assert again.refused is None
            assert {r.kind: r for r in again.replications}["submissions_up"].waiting == 0
            assert len(_ids(province, ps.submissions_db)) == 41
    assert not _leaks(_edge_dump(pair))


def test_upgrade_from_admin_credentials_scrubs_them(secret_pair: Pair) -> None:
    """An edge set up the old way (the province store's admin account in its `_replicator`) is upgraded by
    `edge init --enroll-secret`: its old replications, their credentials and old revisions are gone."""
    pair = secret_pair
    es, ps = pair.edge_settings, pair.province_settings
    edge = pair.edge_couch()
    for db in (es.submissions_db, es.accounts_db, "carecheck_forms", "carecheck_edge", "_replicator"):
        edge.ensure_db(db)
    old_auth = rep.basic_auth("admin", PROVINCE_SECRET)
    local_auth = rep.basic_auth("admin", "admin")
    old_revs: dict[str, str] = {}
    for kind, db in (("submissions_up", es.submissions_db), ("report_up", "carecheck_edge")):
        old_revs[f"carecheck-edge-{kind.replace('_', '-')}~old"] = edge.save("_replicator", {
            "_id": f"carecheck-edge-{kind.replace('_', '-')}~old",
            "source": {"url": f"{pair.edge.base_url}/{db}", "headers": {"Authorization": local_auth}},
            "target": {"url": f"{pair.province.base_url}/{db}", "headers": {"Authorization": old_auth}},
            "continuous": True, "carecheck": {"kind": kind, "generation": "old", "nonce": "x"}})
    edge.save("carecheck_edge", {"_id": f"edge:{AREA}", "type": "edge", "area": AREA,
                                 "node_name": f"edge:{AREA}",
                                 "central_url": pair.province.base_url, "central_user": "admin",
                                 "configured_at": "2026-11-01T00:00:00Z", "via": "", "report": {}})
    assert _leaks(_edge_dump(pair))
    edge.bulk_docs(es.submissions_db, [submission_doc(i, AREA, node=f"edge:{AREA}") for i in range(5)])

    token = enrol(pair, AREA, (f"ctv_{AREA}_01",))
    with province_server(pair) as central:
        cfg = rep.init_edge(es, AREA, central, token, local=edge)
        assert cfg.edge_id and cfg.central_url == central
        assert not _leaks(_edge_dump(pair))
        for doc_id, rev in old_revs.items():  # the deleted docs' old revisions are compacted away
            r = edge.request("GET", f"_replicator/{doc_id}", params={"rev": rev}, action="old", ok=(200, 404))
            assert not _leaks(r.text), r.text[:200]
        assert "central_user" not in (edge.get("carecheck_edge", f"edge:{AREA}") or {})
        assert set(rep.replicator_docs(edge)) == {"submissions_up", "accounts_down", "forms_down"}
        province = pair.province_couch()
        wait_until(lambda: len(_ids(province, ps.submissions_db)) == 5, timeout=60)
        # Re-running init without the secret keeps the enrolled credential (e.g. to add --via later).
        again = rep.init_edge(es, AREA, central, None, local=edge)
        assert again.edge_id == cfg.edge_id
        edge.bulk_docs(es.submissions_db, [submission_doc(i, AREA, node=f"edge:{AREA}") for i in range(5, 7)])
        wait_until(lambda: len(_ids(province, ps.submissions_db)) == 7, timeout=60)
        st = {r.kind: r for r in check(es, edge).replications}["submissions_up"]
        assert st.waiting == 0
