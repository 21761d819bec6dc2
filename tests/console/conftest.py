"""Console fixtures: a real `carecheck serve` on pouchdb-server + SQLite, seeded through the real ingestion
(households of every district, a record edited twice, a registry duplicate, a quarantined record)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.couch import Couch
from core.services import CouchProcess, free_port
from core.settings import ROOT, Settings
from tests.aggregator import factory
from tests.conftest import make_settings

PASSWORD = "mat-khau-123"
DISTRICT, OTHER_DISTRICT = "911", "899"  # Phú Quốc, Rạch Giá
OFFICER, ADMIN = "qh_phuquoc", "tinh_admin"
DISTRICT_ADMIN, COMMUNE_OFFICER = "qh_admin", "xa_officer"


@dataclass
class Console:
    url: str
    settings: Settings
    couch: Couch
    proc: subprocess.Popen[bytes]
    log: Path
    ids: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _in(district: str, n: int, seed: int) -> list[dict[str, Any]]:
    docs = [d for d in factory.households(600, seed=seed).docs if d["area"] == district]
    return docs[:n]


def _edit(doc: dict[str, Any], new_id: str, end: str) -> dict[str, Any]:
    xml = doc["xml"].replace(
        f"<instanceID>{doc['_id']}</instanceID>",
        f"<instanceID>{new_id}</instanceID><deprecatedID>{doc['_id']}</deprecatedID>",
    )
    xml = re.sub(r"<end>[^<]*</end>", f"<end>{end}</end>", xml, count=1)
    return factory.submission_doc(
        xml, new_id, deprecated_id=doc["_id"], area=doc["area"], received_at="2026-11-25T03:00:00Z"
    )


def _duplicate_pair(commune: str, district: str) -> list[dict[str, Any]]:
    """Two visits of one personal ID with different dates of birth: a registry conflict."""
    rng = random.Random("dup")
    visit = date(2026, 11, 2)
    dob = date(2019, 5, 4)
    pid = factory.personal_id("female", dob, rng)
    out = []
    for i, d in enumerate((dob, date(2019, 6, 4))):
        kid = factory.child_answers(
            rng, visit, name=f"Thạch Thị Dup {i}", sex="female", dob=d, with_pid=False
        )
        kid["personal_id"] = pid
        answers = {
            "start": "2026-11-02T10:00:00+07:00",
            "end": "2026-11-02T10:30:00+07:00",
            "today": visit.isoformat(),
            "deviceid": "collect:dup",
            "visit_date": visit.isoformat(),
            "district": district,
            "commune": commune,
            "hamlet": f"Ấp dup {i}",
            "head_name": f"Thạch Văn Dup {i}",
            "poverty_status": "neither",
            "unfenced_water": "no",
            "hotline_111_aware": "yes",
            "births_12m": 0,
            "under5_deaths_12m": 0,
            "child_drowning_deaths_12m": 0,
            "children_count": 1,
        }
        iid = f"uuid:00000000-0000-4000-8000-00000000d0{i}"
        out.append(
            factory.submission_doc(
                factory.household_xml(iid, answers, [kid]),
                iid,
                area=district,
                received_at="2026-11-03T03:00:00Z",
            )
        )
    return out


def seed(settings: Settings, couch: Couch) -> dict[str, Any]:
    """Store the documents, ingest them with the real follower (one document failing: quarantine), rebuild."""
    from aggregator import rollup
    from aggregator.db import get_engine, init_db
    from aggregator.follower import run_page
    from aggregator.ingest import write
    from core.stores import ensure_store

    ensure_store(couch, settings)
    mine = _in(DISTRICT, 40, 7)
    other = _in(OTHER_DISTRICT, 30, 7)
    original = mine[0]
    edits = [
        _edit(original, "uuid:00000000-0000-4000-8000-0000000000e1", "2026-11-20T10:00:00+07:00"),
        _edit(original, "uuid:00000000-0000-4000-8000-0000000000e2", "2026-11-21T10:00:00+07:00"),
    ]
    commune = next(
        c
        for c, u in __import__("core.orgunits", fromlist=["communes"]).communes().items()
        if u.district_code == DISTRICT
    )
    dups = _duplicate_pair(commune, DISTRICT)
    docs = mine + other + edits + dups
    factory.bulk_insert(couch, settings.submissions_db, docs)
    init_db(settings)
    quarantined = mine[1]["_id"]
    real = write.build_rows

    def failing(doc: dict[str, Any], *a: Any, **kw: Any) -> Any:
        if doc.get("_id") == quarantined:
            raise ValueError("simulated failure (test)")
        return real(doc, *a, **kw)

    write.build_rows = failing  # type: ignore[assignment]
    try:
        while run_page(settings, couch)[0]:
            pass
    finally:
        write.build_rows = real  # type: ignore[assignment]
    rollup.rebuild(get_engine(settings))
    return {
        "quarantined": quarantined,
        "original": original["_id"],
        "edits": [e["_id"] for e in edits],
        "dups": [d["_id"] for d in dups],
        "other_doc": other[0]["_id"],
        "mine_doc": mine[5]["_id"],
        "commune": commune,
    }


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory, couch_server: CouchProcess) -> Iterator[Console]:
    from forms.build import build_all
    from sync_server.auth import Accounts

    tmp = tmp_path_factory.mktemp("console")
    forms = tmp / "forms"
    build_all(ROOT / "forms" / "xlsforms", forms)
    db_url = f"sqlite:///{tmp / 'carecheck.db'}"
    settings = make_settings(tmp, couch_server, forms_build_dir=forms, database_url=db_url, ingest_hooks=True)
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    accounts = Accounts(couch, settings)
    accounts.add(OFFICER, PASSWORD, "district", DISTRICT)
    accounts.add(ADMIN, PASSWORD, "province", None, admin=True)
    accounts.add(DISTRICT_ADMIN, PASSWORD, "district", DISTRICT, admin=True)
    ids = seed(settings, couch)
    accounts.add(COMMUNE_OFFICER, PASSWORD, "commune", ids["commune"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env.update(
        {
            "CARECHECK_VAR_DIR": str(settings.var_dir),
            "CARECHECK_COUCHDB_URL": settings.couchdb_url,
            "CARECHECK_COUCHDB_USER": settings.couchdb_user,
            "CARECHECK_COUCHDB_PASSWORD": settings.couchdb_password,
            "CARECHECK_SUBMISSIONS_DB": settings.submissions_db,
            "CARECHECK_ACCOUNTS_DB": settings.accounts_db,
            "CARECHECK_FORMS_BUILD_DIR": str(forms),
            "CARECHECK_DATABASE_URL": db_url,
        }
    )
    log = tmp / "serve.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "carecheck"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Console(f"http://127.0.0.1:{port}", settings, couch, proc, log, ids)
    deadline = time.monotonic() + 40
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"carecheck serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/login", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"carecheck serve did not answer: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield server
    server.stop()
