"""Submissions accepted per second through the sync server vs raw single-document PUTs to the same CouchDB.

One run starts a pouchdb-server and a real `carecheck serve` process (uvicorn), then sends the same N records
both ways with C concurrent clients: as OpenRosa multipart POSTs with Digest auth (XML + one photo), and as
the
documents the server would write (same fields, same inline base64 attachment) PUT straight into CouchDB.
Goal: ratio ≥ 0.7.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from lxml import etree
from pyxform.xls2xform import convert

from core.couch import Couch
from core.services import free_port, start_pouchdb
from core.settings import ROOT, Settings
from sync_server.auth import Accounts

FORM_MD = """
| survey |
| | type | name | label |
| | text | district | District |
| | text | commune | Commune |
| | text | hamlet | Hamlet |
| | text | notes | Notes |
| | image | house_photo | Photo |
| settings |
| | form_id | version | form_title |
| | bench_form | 1 | Bench |
"""


def _write_form(build: Path) -> None:
    xml = convert(xlsform=FORM_MD, file_type=".md").xform.encode()
    d = build / "bench_form" / "1"
    (d / "media").mkdir(parents=True)
    (d / "form.xml").write_bytes(xml)
    (d / "form.json").write_text(
        json.dumps(
            {
                "form_id": "bench_form",
                "version": "1",
                "title": "Bench",
                "languages": [],
                "n_questions": 5,
                "hash": "md5:" + hashlib.md5(xml).hexdigest(),
                "media": [],
            }
        )
    )
    (build / "bench_form" / "current").write_text("1")


def _instance(i: int) -> tuple[str, bytes]:
    iid = f"uuid:{uuid.uuid4()}"
    root = etree.Element("data", id="bench_form", version="1")
    for tag, text in (
        ("district", "911"),
        ("commune", "31078"),
        ("hamlet", f"Ấp {i}"),
        ("notes", "Hộ gia đình có 3 trẻ em dưới 16 tuổi. " * 20),
        ("house_photo", "house.jpg"),
    ):
        etree.SubElement(root, tag).text = text
    etree.SubElement(etree.SubElement(root, "meta"), "instanceID").text = iid
    return iid, bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _timed(ids: range, clients: int, make: Callable[[], Any], send: Callable[[Any, int], None]) -> float:
    per = [list(ids[k::clients]) for k in range(clients)]

    def worker(idx: list[int]) -> None:
        c = make()
        try:
            for i in idx:
                send(c, i)
        finally:
            c.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(worker, idx) for idx in per]:
            f.result()
    return len(ids) / (time.perf_counter() - t0)


def run(quick: bool) -> dict[str, Any]:
    n, clients, photo_bytes = (240, 4, 10_000) if quick else (1200, 8, 20_000)
    photo = os.urandom(photo_bytes)
    records = [_instance(i) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="bench_sub_") as tmp:
        tmpd = Path(tmp)
        cp = start_pouchdb(tmpd / "couch", user="admin", password="admin")
        proc = None
        try:
            settings = Settings(
                var_dir=tmpd / "var",
                couchdb_url=cp.base_url,
                couchdb_user="admin",
                couchdb_password="admin",
                forms_build_dir=tmpd / "forms",
            )
            (tmpd / "var").mkdir()
            _write_form(tmpd / "forms")
            couch = Couch(cp.url, "admin", "admin")
            Accounts(couch, settings).add("bench_ctv", "bench-pass", "collaborator", "31078")
            couch.ensure_db("raw_bench")
            port = free_port()
            env = dict(
                os.environ,
                CARECHECK_VAR_DIR=str(tmpd / "var"),
                CARECHECK_COUCHDB_URL=cp.base_url,
                CARECHECK_COUCHDB_USER="admin",
                CARECHECK_COUCHDB_PASSWORD="admin",
                CARECHECK_FORMS_BUILD_DIR=str(tmpd / "forms"),
                PYTHONPATH=str(ROOT),
            )
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "carecheck"), "serve", "--port", str(port)],
                env=env,
                cwd=tmpd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            base = f"http://127.0.0.1:{port}"
            _wait(base)

            def server_client() -> httpx.Client:
                return httpx.Client(
                    base_url=base, auth=httpx.DigestAuth("bench_ctv", "bench-pass"), timeout=60
                )

            def post(c: httpx.Client, i: int) -> None:
                r = c.post(
                    "/submission?deviceID=bench",
                    files=[
                        ("xml_submission_file", ("submission.xml", records[i][1], "text/xml")),
                        ("house.jpg", ("house.jpg", photo, "image/jpeg")),
                    ],
                )
                if r.status_code != 201:
                    raise RuntimeError(f"server answered {r.status_code}: {r.text[:200]}")

            photo_b64 = base64.b64encode(photo).decode()

            def raw_doc(i: int) -> bytes:
                iid, xml = records[i]
                return json.dumps(
                    {
                        "_id": iid,
                        "type": "submission",
                        "form_id": "bench_form",
                        "form_version": "1",
                        "xml": xml.decode(),
                        "xml_sha256": hashlib.sha256(xml).hexdigest(),
                        "deprecated_id": None,
                        "submitted_by": "bench_ctv",
                        "device_id": "bench",
                        "received_at": "2026-11-29T00:00:00Z",
                        "received_by": "province",
                        "area": "31078",
                        "org_unit": ["91", "911", "31078"],
                        "attachments_expected": ["house.jpg"],
                        "_attachments": {"house.jpg": {"content_type": "image/jpeg", "data": photo_b64}},
                    }
                ).encode()

            def raw_client() -> httpx.Client:
                # Same request shape as the server's own store client (no gzip of tiny answers).
                return httpx.Client(
                    base_url=cp.base_url,
                    auth=("admin", "admin"),
                    timeout=60,
                    headers={"Accept-Encoding": "identity"},
                )

            def put(c: httpx.Client, i: int) -> None:
                r = c.put(
                    f"/raw_bench/{records[i][0]}",
                    content=raw_doc(i),
                    headers={"Content-Type": "application/json"},
                )
                if r.status_code != 201:
                    raise RuntimeError(f"CouchDB answered {r.status_code}: {r.text[:200]}")

            # Warm both paths (connections, caches, leveldb) before timing.
            warm = [_instance(-k) for k in range(1, 6)]
            with server_client() as c:
                for _, xml in warm:
                    c.post("/submission", files=[("xml_submission_file", ("s.xml", xml, "text/xml"))])
            # Interleave rounds (raw, server, raw, server, …): the machine is shared, so load drifts during a
            # run; each round's ratio compares like with like, and the median ratio is reported.
            rounds = 3
            per = n // rounds
            raw_rates, server_rates = [], []
            for k in range(rounds):
                part = range(k * per, (k + 1) * per)
                raw_rates.append(_timed(part, clients, raw_client, put))
                server_rates.append(_timed(part, clients, server_client, post))
            ratios = sorted(s / r for s, r in zip(server_rates, raw_rates, strict=True))
            raw_rate, server_rate = statistics.median(raw_rates), statistics.median(server_rates)
            rows = couch.all_docs(settings.submissions_db)["rows"]
            stored = sum(1 for r in rows if not r["id"].startswith("_design/")) - len(warm)
            return {
                "records": rounds * per,
                "clients": clients,
                "photo_bytes": photo_bytes,
                "rounds": rounds,
                "raw_put_per_s": round(raw_rate, 1),
                "server_accept_per_s": round(server_rate, 1),
                "ratio": round(statistics.median(ratios), 3),
                "ratio_min": round(ratios[0], 3),
                "ratio_max": round(ratios[-1], 3),
                "goal": 0.7,
                "stored_records": stored,
            }
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
            cp.stop()


def _wait(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/formList", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"sync server at {base} did not start")
