"""`carecheck edge enroll|revoke` (province) and `edge init|status|sync-now` (edge) as operators run them:
plain words, exit codes, no credentials printed."""

from __future__ import annotations

import os
import subprocess

from core.settings import ROOT
from tests.edge.conftest import Pair, province_server, wait_until
from tests.edge.households import submission_doc

CARECHECK = str(ROOT / ".venv" / "bin" / "carecheck")


def _run(pair: Pair, *args: str, province: bool = False) -> subprocess.CompletedProcess[str]:
    s = pair.province_settings if province else pair.edge_settings
    store = pair.province if province else pair.edge
    env = dict(os.environ, CARECHECK_COUCHDB_URL=store.base_url, CARECHECK_COUCHDB_USER="admin",
               CARECHECK_COUCHDB_PASSWORD="admin", CARECHECK_SUBMISSIONS_DB=s.submissions_db,
               CARECHECK_ACCOUNTS_DB=s.accounts_db, CARECHECK_VAR_DIR=str(s.var_dir),
               CARECHECK_NODE_NAME="province" if province else "edge:31108")
    return subprocess.run([CARECHECK, *args], env=env, capture_output=True, text=True, timeout=120)


def test_edge_cli(pair: Pair) -> None:
    from sync_server.auth import Accounts

    province = pair.province_couch()
    province.ensure_db(pair.province_settings.accounts_db)
    Accounts(province, pair.province_settings).add("ctv_31108_01", "mat-khau-123", "collaborator", "31108")
    bad = _run(pair, "edge", "enroll", "--area", "91", province=True)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "province" in bad.stderr
    enrolled = _run(pair, "edge", "enroll", "--area", "31108", province=True)
    assert enrolled.returncode == 0, enrolled.stderr
    token = enrolled.stdout.strip().splitlines()[-1]
    edge_id, _, secret = token.partition(":")
    assert edge_id.startswith("edge-31108-") and len(secret) >= 16
    stored = province.get(pair.province_settings.accounts_db, f"user:{edge_id}") or {}
    assert stored["role"] == "edge" and secret not in str(stored)  # only its argon2 hash is kept
    listed = _run(pair, "edge", "list", province=True)
    assert edge_id in listed.stdout and "active" in listed.stdout and secret not in listed.stdout

    with province_server(pair) as central:
        args = ("--central", central)
        bad = _run(pair, "edge", "init", "--area", "99999", *args, "--enroll-secret", token)
        assert bad.returncode == 1 and "99999" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert secret not in bad.stderr + bad.stdout
        wrong = _run(pair, "edge", "init", "--area", "31108", *args, "--enroll-secret", edge_id + ":x" * 9)
        assert wrong.returncode == 1 and "credential" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
        other = _run(pair, "edge", "init", "--area", "31111", *args, "--enroll-secret", token)
        assert other.returncode == 1 and "31108" in other.stderr
        old = _run(pair, "edge", "init", "--area", "31108", *args, "--user", "admin", "--password", "admin")
        assert old.returncode != 0  # the admin-credential set-up is gone

        out = _run(pair, "edge", "init", "--area", "31108", *args, "--enroll-secret", token)
        assert out.returncode == 0, out.stderr
        assert "edge:31108" in out.stdout and secret not in out.stdout

        edge = pair.edge_couch()
        edge.bulk_docs(pair.edge_settings.submissions_db, [submission_doc(i, "31108") for i in range(5)])
        db = pair.province_settings.submissions_db
        wait_until(lambda: province.db_info(db)["doc_count"] >= 6, timeout=60)

        ok = _run(pair, "edge", "status")
        assert ok.returncode == 0, ok.stderr
        assert "Phiếu gửi lên tỉnh: đang chạy; 0 đang chờ; lần thành công gần nhất 20" in ok.stdout
        pair.province.stop()
        edge.bulk_docs(pair.edge_settings.submissions_db, [submission_doc(i, "31108") for i in range(5, 8)])
        down = _run(pair, "edge", "status", "--lang", "en")
        assert down.returncode == 2
        assert "Submissions up to the province: error; 3 not confirmed at the province" in down.stdout
        assert "last error" in down.stdout and "cannot reach the province" in down.stdout
        assert secret not in down.stdout
        # "Sync now" with the province down: an honest failure after the timeout, never "success".
        now = _run(pair, "edge", "sync-now", "--timeout", "3", "--lang", "en")
        assert now.returncode == 1 and "not confirmed at the province" in now.stderr
        assert "3 phiếu chưa xác nhận" in now.stderr
        pair.province.start()
        now = _run(pair, "edge", "sync-now", "--timeout", "60")
        assert now.returncode == 0, now.stderr
        assert "Phiếu gửi lên tỉnh: đang chạy; 0 đang chờ" in now.stdout
        assert province.db_info(pair.province_settings.submissions_db)["doc_count"] >= 9

        # Revoked at the province: the edge's next status says so, in both languages, whatever --lang.
        gone = _run(pair, "edge", "revoke", "--area", "31108", province=True)
        assert gone.returncode == 0 and edge_id in gone.stdout
        revoked = _run(pair, "edge", "status", "--lang", "en")
        assert revoked.returncode == 2
        line = next(x for x in revoked.stdout.splitlines() if x.startswith("!! "))
        assert "thu hồi" in line and "revoked" in line and edge_id in line
        assert "revoked" in _run(pair, "edge", "list", province=True).stdout
        stuck = _run(pair, "edge", "sync-now", "--timeout", "60")
        assert stuck.returncode == 1 and "thu hồi" in stuck.stderr and "revoked" in stuck.stderr
        again = _run(pair, "edge", "revoke", "--id", edge_id, province=True)
        assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    # Enrolment and revocation are in the province's audit log (ids and areas only).
    from core import audit

    events = audit.latest(province, pair.province_settings, limit=50)
    assert {(e["kind"], e["actor"], e["detail"]) for e in events if e["kind"].startswith("edge_")} == {
        (audit.EDGE_ENROLLED, edge_id, "31108"), (audit.EDGE_REVOKED, edge_id, "31108")}
