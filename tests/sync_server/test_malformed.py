"""Malformed requests across every route: each gets a 4xx, the store is unchanged, the server serves on.

One stack for the module (real pouchdb-server, the app under TestClient). Before and after each case the
submissions database's update_seq and document count are compared, and ``/formList`` must still answer.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from core.couch import Couch
from core.services import CouchProcess
from core.settings import Settings
from tests.conftest import make_settings
from tests.sync_server.conftest import PASSWORD, add_accounts
from tests.sync_server.helpers import instance, parts, write_form

LIMIT = 200_000
EDGE_TOKEN = [""]  # `edge enroll` for district 911, done by the fixture


@dataclass
class Case:
    name: str
    method: str
    path: str
    user: str | None = "ctv_pq"
    kw: dict[str, Any] = field(default_factory=dict)
    want: int | None = None  # a specific 4xx, else any 4xx


def _xml(**kw: Any) -> bytes:
    return instance(**kw)


def _raw_xml(text: str) -> bytes:
    return text.encode()


def _files(xml: bytes, extra: dict[str, bytes] | None = None) -> dict[str, Any]:
    return {"files": parts(xml, extra)}


def _multipart(body: bytes, boundary: str = "b0undary") -> dict[str, Any]:
    return {"content": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


def _json(body: Any) -> dict[str, Any]:
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def _raw(body: bytes, ctype: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"Content-Type": ctype}}


GOOD_DOC = {"_id": "uuid:ok", "type": "submission"}
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    '<data id="hh_test"><hamlet>&lol2;</hamlet><meta><instanceID>uuid:x</instanceID></meta></data>'
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<data id="hh_test"><hamlet>&x;</hamlet><meta><instanceID>uuid:y</instanceID></meta></data>'
)

CASES: list[Case] = [
    # --- OpenRosa POST /submission ---
    Case("no body", "POST", "/submission"),
    Case("json body", "POST", "/submission", kw=_json({"a": 1})),
    Case("multipart without xml part", "POST", "/submission", kw={"files": {"photo.jpg": ("p.jpg", b"x")}}),
    Case("xml not well-formed", "POST", "/submission", kw=_files(b"<data id='hh_test'><meta>")),
    Case("xml empty", "POST", "/submission", kw=_files(b"")),
    Case("billion laughs", "POST", "/submission", kw=_files(LAUGHS.encode())),
    Case("external entity", "POST", "/submission", kw=_files(XXE.encode())),
    Case("no instanceID", "POST", "/submission", kw=_files(b'<data id="hh_test"><meta/></data>')),
    Case(
        "no form id",
        "POST",
        "/submission",
        kw=_files(b"<data><meta><instanceID>uuid:z</instanceID></meta></data>"),
    ),
    Case("unknown form", "POST", "/submission", kw=_files(_xml(form_id="nope")), want=404),
    Case("unknown version", "POST", "/submission", kw=_files(_xml(version="1999")), want=404),
    Case("instanceID with /", "POST", "/submission", kw=_files(_xml(instance_id="uuid:a/b")), want=400),
    Case("instanceID with space", "POST", "/submission", kw=_files(_xml(instance_id="uuid:a b")), want=400),
    Case("instanceID with ?", "POST", "/submission", kw=_files(_xml(instance_id="uuid:a?b=1")), want=400),
    Case("instanceID with %", "POST", "/submission", kw=_files(_xml(instance_id="uuid:a%2Fb")), want=400),
    Case("instanceID with #", "POST", "/submission", kw=_files(_xml(instance_id="uuid:a#b")), want=400),
    Case("instanceID starting _", "POST", "/submission", kw=_files(_xml(instance_id="_design/x")), want=400),
    Case(
        "instanceID 300 chars",
        "POST",
        "/submission",
        kw=_files(_xml(instance_id="uuid:" + "a" * 300)),
        want=400,
    ),
    Case("instanceID non-ASCII", "POST", "/submission", kw=_files(_xml(instance_id="uuid:phiếu")), want=400),
    Case("attachment ../", "POST", "/submission", kw=_files(_xml(), {"../evil.jpg": b"x"}), want=400),
    Case("attachment _name", "POST", "/submission", kw=_files(_xml(), {"_evil.jpg": b"x"}), want=400),
    Case(
        "unknown deprecatedID", "POST", "/submission", kw=_files(_xml(deprecated_id="uuid:missing")), want=404
    ),
    Case(
        "over the size limit",
        "POST",
        "/submission",
        kw=_files(_xml(), {"big.jpg": b"x" * (LIMIT + 10)}),
        want=413,
    ),
    Case(
        "declared length over limit",
        "POST",
        "/submission",
        kw={
            "content": b"x",
            "headers": {"Content-Length": str(LIMIT * 10), "Content-Type": "multipart/form-data; boundary=b"},
        },
        want=413,
    ),
    Case("broken multipart", "POST", "/submission", kw=_multipart(b"--b0undary\r\nContent-Disp")),
    Case(
        "multipart no boundary",
        "POST",
        "/submission",
        kw={"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}},
    ),
    Case(
        "declared UTF-16 but UTF-8 bytes",
        "POST",
        "/submission",
        kw=_files(_xml().replace(b"encoding='UTF-8'", b"encoding='UTF-16'")),
    ),
    Case("officer submits", "POST", "/submission", user="huyen_pq", kw=_files(_xml()), want=403),
    Case("officer HEAD", "HEAD", "/submission", user="huyen_pq", want=403),
    # --- authentication ---
    Case(
        "basic not base64",
        "GET",
        "/formList",
        user=None,
        kw={"headers": {"Authorization": "Basic !!!"}},
        want=401,
    ),
    Case(
        "digest garbage",
        "GET",
        "/formList",
        user=None,
        kw={"headers": {"Authorization": 'Digest ,,,="='}},
        want=401,
    ),
    Case("bearer", "GET", "/formList", user=None, kw={"headers": {"Authorization": "Bearer abc"}}, want=401),
    Case(
        "digest without qop",
        "GET",
        "/formList",
        user=None,
        kw={
            "headers": {
                "Authorization": 'Digest username="ctv_pq", realm="carecheck", nonce="x", uri="/formList", '
                'response="0"'
            }
        },
        want=401,
    ),
    Case("form path traversal", "GET", "/forms/..%2F..%2Fetc/form.xml", want=404),
    Case("media path traversal", "GET", "/forms/hh_test/media/..%2F..%2Fform.json", want=404),
    # --- /sync ---
    Case("_changes limit=abc", "GET", "/sync/submissions/_changes?limit=abc", want=400),
    Case("_changes limit=-1", "GET", "/sync/submissions/_changes?limit=-1", want=400),
    Case("_changes limit=1e9x", "GET", "/sync/submissions/_changes?limit=1e9x", want=400),
    Case("_changes feed=bogus", "GET", "/sync/submissions/_changes?feed=bogus", want=400),
    Case("_changes style=bogus", "GET", "/sync/submissions/_changes?style=bogus", want=400),
    Case("_changes since=<script>", "GET", "/sync/submissions/_changes?since=%3Cscript%3E", want=400),
    Case("_bulk_docs not JSON", "POST", "/sync/submissions/_bulk_docs", kw=_raw(b"{not json"), want=400),
    Case(
        "_bulk_docs top-level array", "POST", "/sync/submissions/_bulk_docs", kw=_json([GOOD_DOC]), want=400
    ),
    Case(
        "_bulk_docs docs a string", "POST", "/sync/submissions/_bulk_docs", kw=_json({"docs": "x"}), want=400
    ),
    Case(
        "_bulk_docs docs an object",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_json({"docs": GOOD_DOC}),
        want=400,
    ),
    Case("_bulk_docs no docs", "POST", "/sync/submissions/_bulk_docs", kw=_json({}), want=400),
    Case(
        "_bulk_docs new_edits string",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_json({"docs": [], "new_edits": "no"}),
        want=400,
    ),
    Case(
        "_bulk_docs new_edits:false no _rev",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_json({"docs": [GOOD_DOC], "new_edits": False}),
        want=400,
    ),
    Case(
        "_bulk_docs 1001 docs",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_json({"docs": [{"_id": f"uuid:{i}"} for i in range(1001)]}),
        want=400,
    ),
    Case(
        "_bulk_docs over the size limit",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_json({"docs": [{"_id": "uuid:big", "xml": "x" * (LIMIT + 10)}]}),
        want=413,
    ),
    Case(
        "_bulk_docs declared length over limit",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw={"content": b"{}", "headers": {"Content-Length": str(LIMIT * 100)}},
        want=413,
    ),
    Case("_bulk_docs empty body", "POST", "/sync/submissions/_bulk_docs", kw=_raw(b""), want=400),
    Case(
        "_bulk_docs invalid UTF-8",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_raw(b'{"docs": ["\xff\xfe"]}'),
        want=400,
    ),
    Case(
        "_bulk_docs nested 100k deep",
        "POST",
        "/sync/submissions/_bulk_docs",
        kw=_raw(b"[" * 100_000 + b"]" * 100_000),
        want=400,
    ),
    Case(
        "_bulk_docs as officer",
        "POST",
        "/sync/submissions/_bulk_docs",
        user="huyen_pq",
        kw=_json({"docs": [GOOD_DOC]}),
        want=403,
    ),
    Case("_bulk_docs to forms", "POST", "/sync/forms/_bulk_docs", kw=_json({"docs": [GOOD_DOC]}), want=403),
    Case("_bulk_get not JSON", "POST", "/sync/submissions/_bulk_get", kw=_raw(b"nope"), want=400),
    Case("_bulk_get docs not a list", "POST", "/sync/submissions/_bulk_get", kw=_json({"docs": 5}), want=400),
    Case(
        "_bulk_get entry without id",
        "POST",
        "/sync/submissions/_bulk_get",
        kw=_json({"docs": [{"rev": "1-a"}]}),
        want=400,
    ),
    Case(
        "_bulk_get id a number",
        "POST",
        "/sync/submissions/_bulk_get",
        kw=_json({"docs": [{"id": 5}]}),
        want=400,
    ),
    Case(
        "_bulk_get atts_since a string",
        "POST",
        "/sync/submissions/_bulk_get",
        kw=_json({"docs": [{"id": "uuid:x", "atts_since": "1-a"}]}),
        want=400,
    ),
    Case("_revs_diff array", "POST", "/sync/submissions/_revs_diff", kw=_json(["uuid:x"]), want=400),
    Case(
        "_revs_diff value not a list",
        "POST",
        "/sync/submissions/_revs_diff",
        kw=_json({"uuid:x": "1-a"}),
        want=400,
    ),
    Case("_revs_diff not JSON", "POST", "/sync/submissions/_revs_diff", kw=_raw(b"\x00\x01"), want=400),
    Case("_local not JSON", "PUT", "/sync/submissions/_local/cp1", kw=_raw(b"{{{"), want=400),
    Case("_local an array", "PUT", "/sync/submissions/_local/cp1", kw=_json([1, 2]), want=400),
    Case("_local a string", "PUT", "/sync/submissions/_local/cp1", kw=_json("checkpoint"), want=400),
    Case(
        "_local with _deleted", "PUT", "/sync/submissions/_local/cp1", kw=_json({"_deleted": True}), want=400
    ),
    Case("_local _rev a number", "PUT", "/sync/submissions/_local/cp1", kw=_json({"_rev": 5}), want=400),
    Case("_local id with spaces", "PUT", "/sync/submissions/_local/a%20b", kw=_json({}), want=400),
    Case("_local too large", "PUT", "/sync/submissions/_local/cp1", kw=_json({"x": "y" * 70_000}), want=413),
    Case("GET doc open_revs not JSON", "GET", "/sync/submissions/uuid:x?open_revs=%5Bnope", want=400),
    Case("GET doc open_revs an object", "GET", "/sync/submissions/uuid:x?open_revs=%7B%7D", want=400),
    Case("unknown /sync database", "GET", "/sync/_users", want=404),
    Case("_all_docs not served", "GET", "/sync/submissions/_all_docs", want=404),
    Case("_all_docs POST not served", "POST", "/sync/submissions/_all_docs", kw=_json({"keys": []})),
    # --- /sync/edge (an enrolled edge, Basic auth with its secret) ---
    Case("edge _bulk_docs not JSON", "POST", "/sync/edge/submissions/_bulk_docs", user="edge", kw=_raw(b"{"),
         want=400),
    Case("edge _bulk_docs top-level array", "POST", "/sync/edge/submissions/_bulk_docs", user="edge",
         kw=_json([GOOD_DOC]), want=400),
    Case("edge _bulk_docs docs a string", "POST", "/sync/edge/submissions/_bulk_docs", user="edge",
         kw=_json({"docs": "x"}), want=400),
    Case("edge _bulk_docs new_edits string", "POST", "/sync/edge/submissions/_bulk_docs", user="edge",
         kw=_json({"docs": [], "new_edits": "no"}), want=400),
    Case("edge _bulk_docs over the size limit", "POST", "/sync/edge/submissions/_bulk_docs", user="edge",
         kw=_json({"docs": [{"_id": "uuid:big", "xml": "x" * (LIMIT + 10)}]}), want=413),
    Case("edge _bulk_docs gzip bomb", "POST", "/sync/edge/submissions/_bulk_docs", user="edge",
         kw={"content": gzip.compress(b'{"docs": ["' + b"0" * (LIMIT * 50) + b'"]}'),
             "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"}}, want=413),
    Case("edge _bulk_docs damaged gzip", "POST", "/sync/edge/submissions/_bulk_docs", user="edge",
         kw={"content": b"\x1f\x8b\x08garbage", "headers": {"Content-Encoding": "gzip"}}, want=400),
    Case("edge _held hash not a string", "POST", "/sync/edge/submissions/_held", user="edge",
         kw=_json({"uuid:x": 5}), want=400),
    Case("edge _revs_diff value not a list", "POST", "/sync/edge/submissions/_revs_diff", user="edge",
         kw=_json({"uuid:x": "1-a"}), want=400),
    Case("edge reads records back", "GET", "/sync/edge/submissions/_changes", user="edge", want=403),
    Case("edge _changes limit=abc", "GET", "/sync/edge/forms/_changes?limit=abc", user="edge", want=400),
    Case("edge _changes style=x", "GET", "/sync/edge/accounts/_changes?style=x", user="edge", want=400),
    Case("edge _changes since garbage", "GET", "/sync/edge/forms/_changes?since=%22%7B", user="edge",
         want=400),
    Case("edge _all_docs without keys", "POST", "/sync/edge/forms/_all_docs", user="edge", kw=_json({}),
         want=400),
    Case("edge _bulk_get id a number", "POST", "/sync/edge/accounts/_bulk_get", user="edge",
         kw=_json({"docs": [{"id": 5}]}), want=400),
    Case("edge _local with _deleted", "PUT", "/sync/edge/forms/_local/cp1", user="edge",
         kw=_json({"_deleted": True}), want=400),
    Case("edge report not an object", "PUT", "/sync/edge/report", user="edge", kw=_json({"report": [1]}),
         want=400),
    Case("edge unknown database", "GET", "/sync/edge/secrets/_changes", user="edge", want=404),
    Case("edge route as a collaborator", "GET", "/sync/edge/forms/_changes", want=403),
    # --- operator API, reports ---
    Case("api limit=abc", "GET", "/api/v1/submissions?limit=abc", user="tinh", want=400),
    Case("api limit=0", "GET", "/api/v1/submissions?limit=0", user="tinh", want=400),
    Case("api since garbage", "GET", "/api/v1/submissions?since=yesterday", user="tinh", want=400),
    Case("api since bad cursor", "GET", "/api/v1/submissions?since=c1.%21%21%21", user="tinh", want=400),
    Case("api unknown record", "GET", "/api/v1/submissions/uuid:nope", user="tinh", want=404),
    Case("indicators level bogus", "GET", "/api/v1/indicators?level=galaxy", user="tinh"),
    Case("indicators period bogus", "GET", "/api/v1/indicators?period=someday", user="tinh"),
    Case("report level bogus", "GET", "/reports/galaxy/91", user="tinh"),
    Case("report area unknown", "GET", "/reports/district/999", user="tinh"),
    Case("report period bogus", "GET", "/reports/district/911?period=someday", user="tinh"),
    Case("report format bogus", "GET", "/reports/district/911.exe", user="tinh", want=404),
]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, couch_server: CouchProcess
) -> Iterator[tuple[TestClient, Couch, Settings]]:
    tmp: Path = tmp_path_factory.mktemp("malformed")
    settings = make_settings(tmp, couch_server, max_submission_bytes=LIMIT)
    write_form(settings.effective_forms_build_dir, media={"itemsets.csv": b"list_name,name,label\nx,1,One\n"})
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    add_accounts(settings, couch)
    from aggregator.db import init_db

    init_db(settings)
    from sync_server.edges import enroll

    EDGE_TOKEN[0] = enroll(couch, settings, "911").token
    with TestClient(create_app(settings), base_url="http://phone.test") as client:
        # One real record, so "unchanged" means something.
        r = client.post(
            "/submission",
            files=parts(instance(instance_id=f"uuid:{uuid.uuid4()}")),
            auth=httpx.DigestAuth("ctv_pq", PASSWORD),
        )
        assert r.status_code == 201
        yield client, couch, settings


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


def _state(couch: Couch, settings: Settings) -> tuple[str, int]:
    info = couch.db_info(settings.submissions_db)
    return str(info.get("update_seq")), int(info.get("doc_count", 0))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_gets_4xx_and_changes_nothing(
    case: Case, stack: tuple[TestClient, Couch, Settings]
) -> None:
    client, couch, settings = stack
    before = _state(couch, settings)
    auth: httpx.Auth | tuple[str, str] | None = httpx.DigestAuth(case.user, PASSWORD) if case.user else None
    if case.user == "edge":
        edge_id, _, secret = EDGE_TOKEN[0].partition(":")
        auth = (edge_id, secret)
    r = client.request(case.method, case.path, auth=auth, **case.kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if case.want is not None:
        assert r.status_code == case.want, r.text[:300]
    if case.method != "HEAD" and case.path.startswith(("/sync", "/api")):
        assert r.headers["content-type"].startswith(("application/json", "application/problem+json")), (
            r.headers
        )
    assert _state(couch, settings) == before, "the store changed"
    assert client.get("/formList", auth=httpx.DigestAuth("ctv_pq", PASSWORD)).status_code == 200
