"""`carecheck edge init|status` as an operator runs them: plain words, exit codes, no credentials printed."""

from __future__ import annotations

import json
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

    out = _run(pair, "edge", "init", "--area", "31108", *central, "--password", "s3cret-province")
    # The province store here accepts admin/admin only: a wrong password is refused with one clear line.
    assert out.returncode == 1 and "admin" in out.stderr and "s3cret" not in out.stderr + out.stdout
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
    en = _run(pair, "edge", "status", "--lang", "en", "--json")
    report = json.loads(en.stdout)
    assert report["replications"]["submissions_up"]["waiting"] == 0 and report["central_reachable"]

    pair.province.stop()
    edge.bulk_docs(pair.edge_settings.submissions_db, [submission_doc(i, "31108") for i in range(5, 8)])
    down = _run(pair, "edge", "status", "--lang", "en")
    assert down.returncode == 2
    assert "Submissions up to the province: error; 3 not confirmed at the province" in down.stdout
    assert "last error" in down.stdout and "cannot reach the province" in down.stdout
    assert "admin" not in down.stdout.replace("(account admin)", "")
