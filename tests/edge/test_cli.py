"""`carecheck edge init|status` as an operator runs them: plain words, exit codes, no credentials printed."""

from __future__ import annotations

import os
import subprocess

from core.settings import ROOT
from tests.edge.conftest import Pair, wait_until
from tests.edge.households import submission_doc

CARECHECK = str(ROOT / ".venv" / "bin" / "carecheck")


def _run(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    es = pair.edge_settings
    env = dict(os.environ, CARECHECK_COUCHDB_URL=pair.edge.base_url, CARECHECK_COUCHDB_USER="admin",
               CARECHECK_COUCHDB_PASSWORD="admin", CARECHECK_SUBMISSIONS_DB=es.submissions_db,
               CARECHECK_ACCOUNTS_DB=es.accounts_db, CARECHECK_VAR_DIR=str(es.var_dir),
               CARECHECK_NODE_NAME="edge:31108")
    return subprocess.run([CARECHECK, *args], env=env, capture_output=True, text=True, timeout=120)


def test_edge_cli(pair: Pair) -> None:
    central = ("--central", pair.province.base_url, "--user", "admin")
    bad = _run(pair, "edge", "init", "--area", "99999", *central, "--password", "s3cret-province")
    assert bad.returncode == 1 and "99999" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "s3cret" not in bad.stderr + bad.stdout

    out = _run(pair, "edge", "init", "--area", "31108", *central, "--password", "admin")
    assert out.returncode == 0, out.stderr
    assert "edge:31108" in out.stdout and "password" not in out.stdout.lower()

    edge = pair.edge_couch()
    edge.bulk_docs(pair.edge_settings.submissions_db, [submission_doc(i, "31108") for i in range(5)])
    province = pair.province_couch()
    wait_until(lambda: province.db_info(pair.province_settings.submissions_db)["doc_count"] >= 6, timeout=60)

    ok = _run(pair, "edge", "status")
    assert ok.returncode == 0, ok.stderr
    assert "Phiếu gửi lên tỉnh: đang chạy; 0 đang chờ; lần thành công gần nhất 20" in ok.stdout
    pair.province.stop()
    edge.bulk_docs(pair.edge_settings.submissions_db, [submission_doc(i, "31108") for i in range(5, 8)])
    down = _run(pair, "edge", "status", "--lang", "en")
    assert down.returncode == 2
    assert "Submissions up to the province: error; 3 not confirmed at the province" in down.stdout
    assert "last error" in down.stdout and "cannot reach the province" in down.stdout
    assert "admin" not in down.stdout.replace("(account admin)", "")
    # "Sync now" with the province down: an honest failure after the timeout, never "success".
    now = _run(pair, "edge", "sync-now", "--timeout", "3", "--lang", "en")
    assert now.returncode == 1 and "not confirmed at the province" in now.stderr
    assert "3 phiếu chưa xác nhận" in now.stderr
    pair.province.start()
    now = _run(pair, "edge", "sync-now", "--timeout", "60")
    assert now.returncode == 0, now.stderr
    assert "Phiếu gửi lên tỉnh: đang chạy; 0 đang chờ" in now.stdout
    assert province.db_info(pair.province_settings.submissions_db)["doc_count"] >= 9
