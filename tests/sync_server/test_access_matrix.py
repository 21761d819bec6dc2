"""Least privilege end to end: role × device, API, report and export route × read/create/overwrite/edit.

One stack for the module (a real pouchdb-server behind the app under TestClient, real Digest/Basic). Each
row of :data:`EXPECTED` names an action and what each role gets: an HTTP status, ``"ok"``/``"forbidden"``
for a document inside a ``_bulk_docs`` answer, or the set of seeded records a read returns (``"A,A2"``).
Records: ``A`` by ``ctv_pq`` (commune 31078, Phú Quốc district 911, with a photo), ``A2`` by ``ctv_pq2``
(same commune, another person), ``B`` by ``ctv_rg`` (Rạch Giá district 899).

Edge nodes: ``edge_a`` (enrolled for district 911, Basic auth with its ``edge enroll`` secret) and
``edge_revoked`` (enrolled for 911, then revoked). Their own routes (``/sync/edge/…``) have rows of their own;
a row without a value for a role fails loudly rather than being skipped.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from core import audit, throttle
from core.couch import Couch
from core.services import CouchProcess
from core.settings import Settings
from core.stores import FORMS_DB
from sync_server.auth import Accounts
from tests.conftest import make_settings
from tests.sync_server.conftest import PASSWORD, add_accounts
from tests.sync_server.helpers import instance, parts, write_form

PHOTO = b"\xff\xd8photo-of-the-house" * 50
UNAUTH = ("anonymous", "wrong_password", "disabled")


def _digest(name: str, password: str = PASSWORD) -> httpx.Auth:
    return httpx.DigestAuth(name, password)


class EdgeAuth(httpx.Auth):
    """Basic auth with an edge's ``<edge id>:<secret>`` (set by the fixture once `edge enroll` ran)."""

    def __init__(self) -> None:
        self.token = "edge-none:unset"

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = "Basic " + base64.b64encode(self.token.encode()).decode()
        yield request


EDGE_A, EDGE_REVOKED = EdgeAuth(), EdgeAuth()

# Role -> how its requests authenticate (None = no credentials).
ROLES: dict[str, httpx.Auth | None] = {
    "anonymous": None,
    "wrong_password": _digest("ctv_pq", "not-the-password"),
    "disabled": _digest("ctv_off"),
    "ctv_a": _digest("ctv_pq"),
    "ctv_a2": _digest("ctv_pq2"),
    "officer_a": _digest("huyen_pq"),
    "officer_b": _digest("huyen_rg"),
    "province": _digest("tinh"),
    "edge_a": EDGE_A,
    "edge_revoked": EDGE_REVOKED,
}


@dataclass
class Stack:
    settings: Settings
    client: TestClient
    couch: Couch
    ids: dict[str, str]

    @property
    def db(self) -> str:
        return self.settings.submissions_db


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, couch_server: CouchProcess) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    settings = make_settings(tmp, couch_server, max_submission_bytes=200_000)
    write_form(settings.effective_forms_build_dir, media={"itemsets.csv": b"list_name,name,label\nx,1,One\n"})
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    add_accounts(settings, couch)
    acc = Accounts(couch, settings)
    acc.add("ctv_pq2", PASSWORD, "collaborator", "31078")
    acc.add("huyen_rg", PASSWORD, "district", "899")
    acc.add("ctv_off", PASSWORD, "collaborator", "31078")
    acc.set_active("ctv_off", False)
    from sync_server import edges

    EDGE_A.token = edges.enroll(couch, settings, "911").token
    EDGE_REVOKED.token = (gone := edges.enroll(couch, settings, "911")).token
    edges.revoke(couch, settings, edge_id=gone.edge_id)
    from aggregator.db import init_db

    init_db(settings)  # reports and indicators read the (empty) SQL side
    couch.ensure_db(FORMS_DB)  # published forms (carecheck edge forms-publish makes it)
    # The matrix sends ~60 wrong passwords from one address on purpose: limits here are out of its way
    # (test_throttle.py checks them).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(throttle, "ADDRESS_LIMIT", 10_000)
        mp.setattr(throttle, "ACCOUNT_LIMIT", 10_000)
        with TestClient(create_app(settings), base_url="http://phone.test") as client:
            ids = {"A": f"uuid:{uuid.uuid4()}", "A2": f"uuid:{uuid.uuid4()}", "B": f"uuid:{uuid.uuid4()}"}
            for key, user, commune, district in (
                ("A", "ctv_pq", "31078", "911"),
                ("A2", "ctv_pq2", "31078", "911"),
                ("B", "ctv_rg", "30742", "899"),
            ):
                xml = instance(
                    instance_id=ids[key], house_photo="house.jpg", district=district, commune=commune
                )
                r = client.post("/submission", files=parts(xml, {"house.jpg": PHOTO}), auth=_digest(user))
                assert r.status_code == 201, r.text
            yield Stack(settings, client, couch, ids)


# --- actions: each returns the outcome compared with EXPECTED -----------------------------------------------


def _seen(stack: Stack, ids: list[str]) -> str:
    names = {v: k for k, v in stack.ids.items()}
    return ",".join(sorted(names[i] for i in ids if i in names))


def _status_or(r: httpx.Response, fn: Callable[[httpx.Response], str]) -> str | int:
    return fn(r) if r.status_code in (200, 201) else r.status_code


def _doc(stack: Stack, iid: str, user: str, **kw: object) -> dict[str, object]:
    """A submission doc as a PouchDB app makes it (the device's own idea of the server fields)."""
    commune = "31078"
    xml = instance(instance_id=iid, district="911", commune=commune, **kw).decode()  # type: ignore[arg-type]
    return {
        "_id": iid,
        "type": "submission",
        "form_id": "hh_test",
        "form_version": "2026112901",
        "xml": xml,
        "xml_sha256": hashlib.sha256(xml.encode()).hexdigest(),
        "deprecated_id": kw.get("deprecated_id"),
        "submitted_by": user,
        "area": commune,
        "org_unit": None,
        "attachments_expected": [],
        "received_at": "2026-11-29T00:00:00Z",
        "received_by": "device",
    }


def _push(
    stack: Stack,
    auth: httpx.Auth | None,
    docs: list[dict[str, object]],
    new_edits: bool = True,
    db: str = "submissions",
) -> str | int:
    body: dict[str, object] = {"docs": docs}
    if not new_edits:
        body["new_edits"] = False
    r = stack.client.post(f"/sync/{db}/_bulk_docs", json=body, auth=auth)
    if r.status_code != 201:
        return r.status_code
    return ",".join("forbidden" if x.get("error") else "ok" for x in r.json())


def related(doc: dict[str, object], atts: dict[str, bytes], stubs: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """A document as Apache CouchDB's replicator PUTs one with attachments (``doc_to_multi_part_stream``): the
    JSON with ``follows`` entries, then each attachment in its own part. Returns (body, content type)."""
    entries: dict[str, object] = {n: {"stub": True, "revpos": 1, "content_type": "image/jpeg"} for n in stubs}
    for name, data in atts.items():
        entries[name] = {"content_type": "image/jpeg", "revpos": 2, "digest": "md5-" + base64.b64encode(
            hashlib.md5(data).digest()).decode(), "length": len(data), "follows": True}
    b = uuid.uuid4().hex
    out = [f"--{b}\r\nContent-Type: application/json\r\n\r\n".encode(),
           json.dumps({**doc, "_attachments": entries}).encode()]
    for name, data in atts.items():
        out.append(f"\r\n--{b}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n"
                   f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode())
        out.append(data)
    out.append(f"\r\n--{b}--".encode())
    return b"".join(out), f'multipart/related; boundary="{b}"'


def _put(stack: Stack, auth: httpx.Auth | None, doc: dict[str, object], atts: dict[str, bytes]) -> int:
    body, ctype = related(dict(doc, _rev="1-" + "e" * 32), atts)
    url = f"/sync/edge/submissions/{doc['_id']}?new_edits=false"
    return stack.client.put(url, content=body, headers={"Content-Type": ctype}, auth=auth).status_code


def _user_of(auth: httpx.Auth | None) -> str:
    name = getattr(auth, "_username", b"")
    return name.decode() if isinstance(name, bytes) else str(name)


def _post(stack: Stack, auth: httpx.Auth | None, xml: bytes, files: dict[str, bytes] | None = None) -> int:
    return stack.client.post("/submission", files=parts(xml, files), auth=auth).status_code


def act_edit_carry_forward(stack: Stack, auth: httpx.Auth | None) -> str | int:
    """An edit of A naming A's photo without sending it: the photo is carried forward only for A's author."""
    iid = f"uuid:{uuid.uuid4()}"
    status = _post(
        stack,
        auth,
        instance(instance_id=iid, deprecated_id=stack.ids["A"], house_photo="house.jpg", hamlet="Ấp sửa"),
    )
    doc = stack.couch.get(stack.db, iid)
    if status == 201:
        got = stack.couch.get_attachment(stack.db, iid, "house.jpg") if doc else None
        return "201+photo" if got == PHOTO else "201-no-photo"
    assert doc is None, "a refused edit must store nothing"
    return status


ACTIONS: dict[str, Callable[[Stack, httpx.Auth | None], object]] = {
    # OpenRosa
    "GET /formList": lambda s, a: s.client.get("/formList", auth=a).status_code,
    "GET /forms/{id}/form.xml": lambda s, a: s.client.get("/forms/hh_test/form.xml", auth=a).status_code,
    "GET /forms/{id}/manifest": lambda s, a: s.client.get("/forms/hh_test/manifest", auth=a).status_code,
    "HEAD /submission": lambda s, a: s.client.head("/submission", auth=a).status_code,
    "POST /submission create": lambda s, a: _post(s, a, instance()),
    "POST /submission overwrite A": lambda s, a: _post(
        s, a, instance(instance_id=s.ids["A"], hamlet="Ấp giả")
    ),
    "POST /submission edit A": lambda s, a: _post(
        s, a, instance(instance_id=f"uuid:{uuid.uuid4()}", deprecated_id=s.ids["A"])
    ),
    "POST /submission edit A2": lambda s, a: _post(
        s, a, instance(instance_id=f"uuid:{uuid.uuid4()}", deprecated_id=s.ids["A2"])
    ),
    "POST /submission edit A, carry photo": act_edit_carry_forward,
    # /sync reads
    "GET /sync/": lambda s, a: s.client.get("/sync/", auth=a).status_code,
    "GET /sync/forms/_changes": lambda s, a: s.client.get("/sync/forms/_changes", auth=a).status_code,
    "GET /sync/submissions/_changes": lambda s, a: _status_or(
        s.client.get("/sync/submissions/_changes?limit=1000", auth=a),
        lambda r: _seen(s, [x["id"] for x in r.json()["results"]]),
    ),
    "POST /sync/submissions/_bulk_get": lambda s, a: _status_or(
        s.client.post(
            "/sync/submissions/_bulk_get", auth=a, json={"docs": [{"id": i} for i in s.ids.values()]}
        ),
        lambda r: _seen(s, [x["id"] for x in r.json()["results"] if any("ok" in d for d in x["docs"])]),
    ),
    "GET /sync/submissions/A": lambda s, a: (
        s.client.get(f"/sync/submissions/{s.ids['A']}", auth=a).status_code
    ),
    "GET /sync/submissions/A?open_revs=all": lambda s, a: (
        s.client.get(
            f"/sync/submissions/{s.ids['A']}?open_revs=all", auth=a, headers={"Accept": "application/json"}
        ).status_code
    ),
    "GET /sync/submissions/_all_docs": lambda s, a: (
        s.client.get("/sync/submissions/_all_docs", auth=a).status_code
    ),
    "POST /sync/submissions/_revs_diff A": lambda s, a: _status_or(
        s.client.post(
            "/sync/submissions/_revs_diff",
            auth=a,
            json={s.ids["A"]: [str((s.couch.get(s.db, s.ids["A"]) or {})["_rev"])]},
        ),
        lambda r: "missing" if r.json() else "present",
    ),
    "PUT+GET /sync/submissions/_local/cp": lambda s, a: _status_or(
        s.client.put("/sync/submissions/_local/cp-matrix", auth=a, json={"last_seq": 1}),
        lambda r: str(s.client.get("/sync/submissions/_local/cp-matrix", auth=a).status_code),
    ),
    # /sync writes
    "_bulk_docs create": lambda s, a: _push(s, a, [_doc(s, f"uuid:{uuid.uuid4()}", _user_of(a))]),
    "_bulk_docs create claiming ctv_pq": lambda s, a: _push(
        s, a, [_doc(s, f"uuid:{uuid.uuid4()}", "ctv_pq")]
    ),
    "_bulk_docs overwrite A (new_edits:false, forged 9-rev)": lambda s, a: _push(
        s, a, [dict(_doc(s, s.ids["A"], _user_of(a), hamlet="Ấp giả"), _rev="9-" + "f" * 32)], new_edits=False
    ),
    "_bulk_docs overwrite A (its own _rev)": lambda s, a: _push(
        s,
        a,
        [
            dict(
                _doc(s, s.ids["A"], _user_of(a), hamlet="Ấp giả"),
                _rev=str((s.couch.get(s.db, s.ids["A"]) or {}).get("_rev")),
            )
        ],
    ),
    "_bulk_docs overwrite B (new_edits:false)": lambda s, a: _push(
        s, a, [dict(_doc(s, s.ids["B"], _user_of(a)), _rev="1-" + "e" * 32)], new_edits=False
    ),
    "_bulk_docs delete A": lambda s, a: _push(
        s, a, [{"_id": s.ids["A"], "_rev": "9-" + "d" * 32, "_deleted": True}], new_edits=False
    ),
    "_bulk_docs edit A": lambda s, a: _push(
        s,
        a,
        [
            dict(
                _doc(s, (i := f"uuid:{uuid.uuid4()}"), _user_of(a), deprecated_id=s.ids["A"]),
                _rev="1-" + hashlib.md5(i.encode()).hexdigest(),
            )
        ],
        new_edits=False,
    ),
    "_bulk_docs to forms": lambda s, a: _push(s, a, [{"_id": "form:x:1", "type": "form"}], db="forms"),
    # /sync/edge: enrolled edge nodes (push records, pull forms and their area's collaborator accounts)
    "GET /sync/edge/": lambda s, a: s.client.get("/sync/edge/", auth=a).status_code,
    "GET /sync/edge/forms/_changes": lambda s, a: (
        s.client.get("/sync/edge/forms/_changes", auth=a).status_code
    ),
    "GET /sync/edge/accounts/_changes": lambda s, a: _status_or(
        s.client.get("/sync/edge/accounts/_changes?include_docs=true", auth=a),
        lambda r: ",".join(sorted(x["doc"]["name"] for x in r.json()["results"])),
    ),
    "GET /sync/edge/accounts/user:huyen_pq": lambda s, a: (
        s.client.get("/sync/edge/accounts/user:huyen_pq", auth=a).status_code
    ),
    "GET /sync/edge/submissions/_changes": lambda s, a: (
        s.client.get("/sync/edge/submissions/_changes", auth=a).status_code
    ),
    "POST /sync/edge/submissions/_bulk_get A": lambda s, a: (
        s.client.post(
            "/sync/edge/submissions/_bulk_get", auth=a, json={"docs": [{"id": s.ids["A"]}]}
        ).status_code
    ),
    "edge push create by ctv_pq": lambda s, a: _push(
        s, a, [_doc(s, f"uuid:{uuid.uuid4()}", "ctv_pq")], db="edge/submissions"
    ),
    "edge PUT create by ctv_pq (multipart)": lambda s, a: _put(
        s, a, _doc(s, f"uuid:{uuid.uuid4()}", "ctv_pq"), {"house.jpg": PHOTO}
    ),
    "edge PUT create by ctv_rg (other district)": lambda s, a: _put(
        s, a, dict(_doc(s, f"uuid:{uuid.uuid4()}", "ctv_rg"), area="30742"), {"house.jpg": PHOTO}
    ),
    "edge PUT overwrite A (multipart)": lambda s, a: _put(
        s, a, _doc(s, s.ids["A"], "ctv_pq", hamlet="Ấp giả"), {"house.jpg": PHOTO}
    ),
    "edge push create by ctv_rg (other district)": lambda s, a: _push(
        s, a, [dict(_doc(s, f"uuid:{uuid.uuid4()}", "ctv_rg"), area="30742")], db="edge/submissions"
    ),
    "edge push create by huyen_pq (an officer)": lambda s, a: _push(
        s, a, [dict(_doc(s, f"uuid:{uuid.uuid4()}", "huyen_pq"), area="911")], db="edge/submissions"
    ),
    "edge push overwrite A (new_edits:false, forged 9-rev)": lambda s, a: _push(
        s, a, [dict(_doc(s, s.ids["A"], "ctv_pq", hamlet="Ấp giả"), _rev="9-" + "f" * 32)], new_edits=False,
        db="edge/submissions",
    ),
    "edge push edit A as ctv_pq": lambda s, a: _push(
        s, a, [_doc(s, f"uuid:{uuid.uuid4()}", "ctv_pq", deprecated_id=s.ids["A"])], db="edge/submissions"
    ),
    "edge push edit A as ctv_pq2": lambda s, a: _push(
        s, a, [_doc(s, f"uuid:{uuid.uuid4()}", "ctv_pq2", deprecated_id=s.ids["A"])], db="edge/submissions"
    ),
    "edge push delete A": lambda s, a: _push(
        s, a, [{"_id": s.ids["A"], "_rev": "9-" + "d" * 32, "_deleted": True}], new_edits=False,
        db="edge/submissions",
    ),
    "edge push to forms": lambda s, a: _push(s, a, [{"_id": "form:x:1", "type": "form"}], db="edge/forms"),
    # Operator API, reports, exports
    "GET /api/v1/submissions": lambda s, a: _status_or(
        s.client.get("/api/v1/submissions?limit=1000", auth=a),
        lambda r: _seen(s, [x["instance_id"] for x in r.json()["items"]]),
    ),
    "GET /api/v1/submissions/A": lambda s, a: (
        s.client.get(f"/api/v1/submissions/{s.ids['A']}", auth=a).status_code
    ),
    "GET /api/v1/submissions/B": lambda s, a: (
        s.client.get(f"/api/v1/submissions/{s.ids['B']}", auth=a).status_code
    ),
    "GET /api/v1/devices": lambda s, a: s.client.get("/api/v1/devices", auth=a).status_code,
    "GET /api/v1/indicators district 911": lambda s, a: (
        s.client.get("/api/v1/indicators?level=district&area=911&period=2026", auth=a).status_code
    ),
    "GET /api/v1/edges": lambda s, a: s.client.get("/api/v1/edges", auth=a).status_code,
    "GET /reports/district/911": lambda s, a: (
        s.client.get("/reports/district/911?period=2026", auth=a).status_code
    ),
    "GET /reports/district/911.xlsx": lambda s, a: (
        s.client.get("/reports/district/911.xlsx?period=2026", auth=a).status_code
    ),
    "GET /reports/district/911.csv": lambda s, a: (
        s.client.get("/reports/district/911.csv?period=2026", auth=a).status_code
    ),
    "GET /reports/province/91.csv": lambda s, a: (
        s.client.get("/reports/province/91.csv?period=2026", auth=a).status_code
    ),
}

# What each role gets. Unauthenticated roles get 401 everywhere (filled in below).
_COLS = ("ctv_a", "ctv_a2", "officer_a", "officer_b", "province")
_TABLE: dict[str, tuple[object, ...]] = {
    "GET /formList": (200, 200, 200, 200, 200),
    "GET /forms/{id}/form.xml": (200, 200, 200, 200, 200),
    "GET /forms/{id}/manifest": (200, 200, 200, 200, 200),
    "HEAD /submission": (204, 204, 403, 403, 403),
    "POST /submission create": (201, 201, 403, 403, 403),
    "POST /submission overwrite A": (409, 409, 403, 403, 403),
    "POST /submission edit A": (201, 403, 403, 403, 403),
    "POST /submission edit A2": (403, 201, 403, 403, 403),
    "POST /submission edit A, carry photo": ("201+photo", 403, 403, 403, 403),
    "GET /sync/": (200, 200, 200, 200, 200),
    "GET /sync/forms/_changes": (200, 200, 200, 200, 200),
    "GET /sync/submissions/_changes": ("A", "A2", "A,A2", "B", "A,A2,B"),
    "POST /sync/submissions/_bulk_get": ("A", "A2", "A,A2", "B", "A,A2,B"),
    "GET /sync/submissions/A": (200, 404, 200, 404, 200),
    "GET /sync/submissions/A?open_revs=all": (200, 404, 200, 404, 200),
    "GET /sync/submissions/_all_docs": (404, 404, 404, 404, 404),
    "POST /sync/submissions/_revs_diff A": ("present", "missing", 403, 403, 403),
    "PUT+GET /sync/submissions/_local/cp": ("200", "200", "200", "200", "200"),
    "_bulk_docs create": ("ok", "ok", 403, 403, 403),
    "_bulk_docs create claiming ctv_pq": ("ok", "forbidden", 403, 403, 403),
    "_bulk_docs overwrite A (new_edits:false, forged 9-rev)": ("forbidden", "forbidden", 403, 403, 403),
    "_bulk_docs overwrite A (its own _rev)": ("forbidden", "forbidden", 403, 403, 403),
    "_bulk_docs overwrite B (new_edits:false)": ("forbidden", "forbidden", 403, 403, 403),
    "_bulk_docs delete A": ("forbidden", "forbidden", 403, 403, 403),
    "_bulk_docs edit A": ("ok", "forbidden", 403, 403, 403),
    "_bulk_docs to forms": (403, 403, 403, 403, 403),
    **dict.fromkeys((
        "GET /sync/edge/", "GET /sync/edge/forms/_changes", "GET /sync/edge/accounts/_changes",
        "GET /sync/edge/accounts/user:huyen_pq", "GET /sync/edge/submissions/_changes",
        "POST /sync/edge/submissions/_bulk_get A", "edge push create by ctv_pq",
        "edge push create by ctv_rg (other district)", "edge push create by huyen_pq (an officer)",
        "edge push overwrite A (new_edits:false, forged 9-rev)", "edge push edit A as ctv_pq",
        "edge push edit A as ctv_pq2", "edge push delete A", "edge push to forms",
        "edge PUT create by ctv_pq (multipart)", "edge PUT create by ctv_rg (other district)",
        "edge PUT overwrite A (multipart)",
    ), (403, 403, 403, 403, 403)),
    "GET /api/v1/submissions": (403, 403, "A,A2", "B", "A,A2,B"),
    "GET /api/v1/submissions/A": (403, 403, 200, 404, 200),
    "GET /api/v1/submissions/B": (403, 403, 404, 200, 200),
    "GET /api/v1/devices": (403, 403, 200, 200, 200),
    "GET /api/v1/indicators district 911": (403, 403, 200, 403, 200),
    "GET /api/v1/edges": (403, 403, 403, 403, 200),
    "GET /reports/district/911": (403, 403, 200, 403, 200),
    "GET /reports/district/911.xlsx": (403, 403, 200, 403, 200),
    "GET /reports/district/911.csv": (403, 403, 200, 403, 200),
    "GET /reports/province/91.csv": (403, 403, 403, 403, 200),
}
# The edge of district 911: its own routes only (the published forms through OpenRosa too: the same forms it
# replicates); a revoked edge: 403 (edge_revoked) on everything, from the first request after `edge revoke`.
_EDGE: dict[str, object] = {
    "GET /formList": 200,
    "GET /forms/{id}/form.xml": 200,
    "GET /forms/{id}/manifest": 200,
    "GET /sync/edge/": 200,
    "GET /sync/edge/forms/_changes": 200,
    "GET /sync/edge/accounts/_changes": "ctv_off,ctv_pq,ctv_pq2",  # collaborators of 911, disabled ones too
    "GET /sync/edge/accounts/user:huyen_pq": 404,
    "edge push create by ctv_pq": "ok",
    "edge push create by ctv_rg (other district)": "forbidden",
    "edge push create by huyen_pq (an officer)": "forbidden",
    "edge push overwrite A (new_edits:false, forged 9-rev)": "forbidden",
    "edge push edit A as ctv_pq": "ok",
    "edge push edit A as ctv_pq2": "forbidden",
    "edge push delete A": "forbidden",
    "edge PUT create by ctv_pq (multipart)": 201,
    "edge PUT create by ctv_rg (other district)": 403,
    "edge PUT overwrite A (multipart)": 403,
}
EXPECTED: dict[str, dict[str, object]] = {
    action: {**dict.fromkeys(UNAUTH, 401), **dict(zip(_COLS, row, strict=True)),
             "edge_a": _EDGE.get(action, 403), "edge_revoked": 403}
    for action, row in _TABLE.items()
}


def test_matrix_covers_every_action() -> None:
    assert set(EXPECTED) == set(ACTIONS)
    for action, row in EXPECTED.items():
        assert set(row) == set(ROLES), f"{action}: a value for every role"


def test_role_route_action_matrix(stack: Stack) -> None:
    before = {k: stack.couch.get(stack.db, i, conflicts=True) for k, i in stack.ids.items()}
    wrong: list[str] = []
    for action, fn in ACTIONS.items():
        for role, auth in ROLES.items():
            got = fn(stack, auth)
            want = EXPECTED[action][role]
            if got != want:
                wrong.append(f"{action} as {role}: got {got!r}, want {want!r}")
    assert not wrong, "\n".join(wrong)

    # The seeded records are exactly as they were: no overwrite, no forged branch, no deletion.
    for key, i in stack.ids.items():
        now = stack.couch.get(stack.db, i, conflicts=True)
        assert now is not None and now["_rev"] == before[key]["_rev"], key  # type: ignore[index]
        assert now["xml_sha256"] == before[key]["xml_sha256"] and not now.get("_conflicts"), key  # type: ignore[index]
    # Only A's author superseded A (through OpenRosa twice and /sync once), only A2's author A2.
    for key, author in (("A", "ctv_pq"), ("A2", "ctv_pq2")):
        rows = stack.couch.view(stack.db, "carecheck", "by_deprecated", key=stack.ids[key])["rows"]
        assert rows and {stack.couch.get(stack.db, r["id"])["submitted_by"] for r in rows} == {author}  # type: ignore[index]
    # Every /sync-created record carries the server's owner fields, whatever the device wrote.
    mine = stack.couch.find(stack.db, {"received_at": {"$gt": None}, "submitted_by": "ctv_pq2"}, limit=1000)[
        "docs"
    ]
    assert mine and all(d["area"] == "31078" and d["received_by"] == "province" for d in mine)

    # Refused writes are in the audit log, by reason, with ids and account names only.
    events = audit.latest(stack.couch, stack.settings, limit=500)
    reasons = {e["reason"] for e in events if e["kind"] == audit.WRITE_REFUSED}
    assert {"overwrite", "foreign_edit", "forged_owner", "not_submitter"} <= reasons, reasons
    assert all("Ấp" not in str(e) for e in events)  # no answers in the log


def test_pushed_docs_get_server_fields(stack: Stack) -> None:
    """A device's values for the server's fields are replaced (org_unit from the answers, received_by)."""
    iid = f"uuid:{uuid.uuid4()}"
    doc = _doc(stack, iid, "ctv_pq")
    doc.update(
        {
            "org_unit": ["91", "899", "30742"],
            "received_by": "edge:99999",
            "submitted_by": None,
            "area": None,
            "_attachments": {
                "a.jpg": {"content_type": "image/jpeg", "data": base64.b64encode(b"jpeg").decode()}
            },
        }
    )
    assert _push(stack, ROLES["ctv_a"], [doc]) == "ok"
    stored = stack.couch.get(stack.db, iid)
    assert stored is not None and stored["submitted_by"] == "ctv_pq" and stored["area"] == "31078"
    assert stored["org_unit"] == ["91", "911", "31078"] and stored["received_by"] == "province"
    assert list(stored["_attachments"]) == ["a.jpg"]
    # An identical resend is acknowledged and writes nothing.
    rev = stored["_rev"]
    assert _push(stack, ROLES["ctv_a"], [doc]) == "ok"
    assert stack.couch.get(stack.db, iid)["_rev"] == rev  # type: ignore[index]
    # A stub attachment (carry-forward by reference) is not accepted on /sync: attachments come inline.
    stub = _doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq")
    stub["_attachments"] = {"house.jpg": {"stub": True}}
    assert _push(stack, ROLES["ctv_a"], [stub]) == "forbidden"


def test_original_and_edit_in_one_push(stack: Stack) -> None:
    """PouchDB pushes an offline record and its edit together: the edit finds its original in the batch."""
    orig = _doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq")
    edit = _doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq", deprecated_id=orig["_id"])
    assert _push(stack, ROLES["ctv_a"], [orig, edit]) == "ok,ok"
    assert (
        _push(
            stack,
            ROLES["ctv_a"],
            [_doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq", deprecated_id="uuid:not-there")],
        )
        == "forbidden"
    )


def test_deleted_record_is_not_brought_back(stack: Stack) -> None:
    """The province deleted a record: neither a /sync push nor an OpenRosa resend of it recreates it."""
    iid = f"uuid:{uuid.uuid4()}"
    xml = instance(instance_id=iid)
    assert _post(stack, ROLES["ctv_a"], xml) == 201
    doc = stack.couch.get(stack.db, iid)
    assert doc is not None
    stack.couch.delete(stack.db, iid, str(doc["_rev"]))
    pushed = dict(_doc(stack, iid, "ctv_pq"), xml=xml.decode(), xml_sha256=doc["xml_sha256"])
    assert _push(stack, ROLES["ctv_a"], [dict(pushed, _rev="1-" + "c" * 32)], new_edits=False) == "forbidden"
    assert _push(stack, ROLES["ctv_a"], [pushed]) == "forbidden"
    assert _post(stack, ROLES["ctv_a"], xml) == 409
    assert stack.couch.get(stack.db, iid) is None


@pytest.mark.parametrize(
    "rev",
    [
        {"_rev": "abc"},
        {"_rev": 5},
        {"_rev": "0-abc"},
        {"_rev": "1-abc", "_revisions": {"start": 2, "ids": ["abc"]}},
        {"_rev": "2-abc", "_revisions": {"start": 2, "ids": ["zzz", "yyy"]}},
        {"_rev": "2-abc", "_revisions": "all"},
        {"_revisions": {"start": 1, "ids": ["abc"]}},
    ],
)
def test_malformed_revisions_are_refused_per_doc(stack: Stack, rev: dict[str, object]) -> None:
    """A bad _rev/_revisions is that document's refusal; the rest of the batch is stored."""
    good = _doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq")
    bad = dict(_doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq"), **rev)
    r = stack.client.post("/sync/submissions/_bulk_docs", json={"docs": [bad, good]}, auth=ROLES["ctv_a"])
    assert r.status_code == 201
    assert [("error" in x) for x in r.json()] == [True, False], r.json()
    assert stack.couch.get(stack.db, str(good["_id"])) and stack.couch.get(stack.db, str(bad["_id"])) is None



def test_a_form_the_server_does_not_have_is_refused_on_every_device_path(stack: Stack) -> None:
    """Rule 7: an unknown form or a removed version is refused on /sync as on OpenRosa; not an edge's push."""
    for form_id, version in (("hh_nope", "2026112901"), ("hh_test", "2020010101")):
        iid = f"uuid:{uuid.uuid4()}"
        xml = instance(form_id=form_id, version=version, instance_id=iid)
        doc = dict(_doc(stack, iid, "ctv_pq"), xml=xml.decode(), form_id=form_id, form_version=version)
        r = stack.client.post("/sync/submissions/_bulk_docs", json={"docs": [doc]}, auth=ROLES["ctv_a"])
        assert r.status_code == 201, r.text
        [res] = r.json()
        assert res["error"] == "forbidden" and res["reason_code"] == "form_unknown", res
        assert "not on this server" in res["reason"]
        assert "không có" in res["reason_vi"], res  # the phone shows the reason in Vietnamese first
        assert stack.couch.get(stack.db, iid) is None
        r = stack.client.post("/submission", files=parts(xml), auth=ROLES["ctv_a"])
        assert r.status_code == 404 and "not on this server" in r.text, r.text
        # The edge took it from its phone under its own forms: the province keeps it (ingestion reads any
        # version).
        r = stack.client.post("/sync/edge/submissions/_bulk_docs", json={"docs": [doc]}, auth=EDGE_A)
        assert r.status_code == 201 and "error" not in r.json()[0], r.text
        assert stack.couch.get(stack.db, iid) is not None
        # Its author's resend of the stored record is acknowledged (nothing new is written): not refused.
        assert _push(stack, ROLES["ctv_a"], [doc]) == "ok"


def test_a_resend_adds_the_photos_the_store_lacks_for_its_author_only(stack: Stack) -> None:
    """A later revision (an edge's split upload) brings a photo: added, none replaced; its author only."""

    def att(data: bytes) -> dict[str, str]:
        return {"content_type": "image/jpeg", "data": base64.b64encode(data).decode()}

    doc = _doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq")
    iid = str(doc["_id"])
    assert _push(stack, ROLES["ctv_a"], [dict(doc, _attachments={"a.jpg": att(b"first")})]) == "ok"
    # Someone else of the same commune resends it with a photo: acknowledged, nothing added.
    other = dict(doc, submitted_by=None, area=None, _attachments={"x.jpg": att(b"not yours")})
    assert _push(stack, _digest("ctv_pq2"), [other]) == "ok"
    assert sorted(stack.couch.get(stack.db, iid)["_attachments"]) == ["a.jpg"]  # type: ignore[index]
    # Its author's later revision carries the first photo (other bytes: never replaced) and a new one.
    later = dict(doc, _attachments={"a.jpg": att(b"changed"), "b.jpg": att(b"second")})
    assert _push(stack, ROLES["ctv_a"], [later]) == "ok"
    assert sorted(stack.couch.get(stack.db, iid)["_attachments"]) == ["a.jpg", "b.jpg"]  # type: ignore[index]
    assert stack.couch.get_attachment(stack.db, iid, "a.jpg") == b"first"
    assert stack.couch.get_attachment(stack.db, iid, "b.jpg") == b"second"
    assert _push(stack, ROLES["ctv_a"], [later]) == "ok"  # again: nothing changes
    # The same rule on OpenRosa: a split upload's "later part" from another account adds nothing.
    xml = str(doc["xml"]).encode()
    r = stack.client.post("/submission", files=parts(xml, {"y.jpg": b"not yours"}), auth=_digest("ctv_pq2"))
    assert r.status_code == 202, r.text
    assert sorted(stack.couch.get(stack.db, iid)["_attachments"]) == ["a.jpg", "b.jpg"]  # type: ignore[index]
    assert stack.couch.get(stack.db, iid)["_rev"].startswith("2-")  # type: ignore[index]


def test_an_edge_on_couchdb_pushes_records_with_photos_by_put(stack: Stack) -> None:
    """Apache CouchDB's replicator PUTs each document with attachments as multipart/related (photos over
    64 KB, later revisions naming what the province holds as stubs): the write rule as for _bulk_docs."""
    big = bytes(range(256)) * 400  # 100 KB: CouchDB's replicator sends it as its own part, never inline
    doc = _doc(stack, f"uuid:{uuid.uuid4()}", "ctv_pq")
    iid = str(doc["_id"])
    url = f"/sync/edge/submissions/{iid}?new_edits=false"

    def put(body: bytes, ctype: str, **extra: str) -> httpx.Response:
        return stack.client.put(url, content=body, headers={"Content-Type": ctype, **extra}, auth=EDGE_A)

    # A new record naming a photo by stub: 412 missing_stub (the replicator then resends it whole).
    body, ctype = related(dict(doc, _rev="1-" + "a" * 32), {}, stubs=("house.jpg",))
    r = put(body, ctype)
    assert r.status_code == 412 and r.json()["error"] == "missing_stub", r.text
    assert stack.couch.get(stack.db, iid) is None
    # Whole: stored with its photo, byte for byte, and the server's fields.
    body, ctype = related(dict(doc, _rev="1-" + "a" * 32), {"house.jpg": big})
    r = put(body, ctype)
    assert r.status_code == 201 and r.json()["ok"], r.text
    stored = stack.couch.get(stack.db, iid)
    assert stored is not None and stored["submitted_by"] == "ctv_pq" and stored["received_by"] == "edge:911"
    assert stack.couch.get_attachment(stack.db, iid, "house.jpg") == big
    # Its later revision (a split upload's second part at the edge): the first photo as a stub, a new one
    # gzip-encoded, the body gzip-compressed by the uplink relay. Added; nothing replaced.
    card = b"card photo " * 500
    rev2 = dict(doc, _rev="2-" + "b" * 32, _revisions={"start": 2, "ids": ["b" * 32, "a" * 32]})
    body, ctype = related(rev2, {"card.jpg": gzip.compress(card)}, stubs=("house.jpg",))
    body = body.replace(b'"follows": true', b'"follows": true, "encoding": "gzip"')
    r = put(gzip.compress(body), ctype, **{"Content-Encoding": "gzip"})
    assert r.status_code == 201, r.text
    assert stack.couch.get_attachment(stack.db, iid, "card.jpg") == card
    assert stack.couch.get_attachment(stack.db, iid, "house.jpg") == big
    # Damaged bodies: one line saying what is wrong, nothing stored.
    for bad, why in ((body[: len(body) // 2], "damaged"), (b"--x\r\n\r\n{}\r\n--x--", "boundary")):
        r = put(bad, ctype if why == "damaged" else "multipart/related")
        assert r.status_code == 400, r.text


def test_an_edge_on_couchdb_pulls_forms_as_multipart_mixed(stack: Stack) -> None:
    """CouchDB's replicator fetches a document's revisions with ``Accept: multipart/mixed`` and reads nothing
    else: one JSON part per revision, attachments inline when asked for, ``missing`` for an unknown one."""
    import email

    fid = f"form:x_{uuid.uuid4().hex[:6]}:1"
    doc = {"_id": fid, "type": "form", "current": True, "_attachments": {
        "form.xml": {"content_type": "text/xml", "data": base64.b64encode(b"<h:html/>").decode()}}}
    rev = stack.couch.bulk_docs(FORMS_DB, [doc])[0]["rev"]
    revs = json.dumps([rev])
    r = stack.client.get(f"/sync/edge/forms/{fid}", params={"open_revs": revs, "revs": "true",
                         "latest": "true", "attachments": "true"},
                         headers={"Accept": "multipart/mixed"}, auth=EDGE_A)
    assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/mixed"), r.text
    msg = email.message_from_bytes(f"Content-Type: {r.headers['content-type']}\r\n\r\n".encode() + r.content)
    parts = [json.loads(p.get_payload(decode=True)) for p in msg.get_payload()]
    found = next(p for p in parts if p.get("_id") == fid)
    assert base64.b64decode(found["_attachments"]["form.xml"]["data"]) == b"<h:html/>"
    assert found["_revisions"]["start"] == 1
    assert len(parts) == 1
    # A revision not here is a part of its own (pouchdb-server answers it only without attachments=true).
    missing = "9-" + "0" * 32
    r = stack.client.get(f"/sync/edge/forms/{fid}", params={"open_revs": json.dumps([rev, missing])},
                         headers={"Accept": "multipart/mixed"}, auth=EDGE_A)
    msg = email.message_from_bytes(f"Content-Type: {r.headers['content-type']}\r\n\r\n".encode() + r.content)
    assert {"missing": missing} in [json.loads(p.get_payload(decode=True)) for p in msg.get_payload()]
    # PouchDB's replicator (and any JSON client) still gets JSON.
    r = stack.client.get(f"/sync/edge/forms/{fid}", params={"open_revs": revs}, auth=EDGE_A,
                         headers={"Accept": "application/json"})
    assert r.status_code == 200 and isinstance(r.json(), list)


def test_an_edge_on_couchdb_reads_a_continuous_feed_line_by_line(stack: Stack) -> None:
    """CouchDB's replicator asks continuous replications' changes with feed=continuous: one change per line,
    then the last_seq line (PouchDB's asks longpoll and gets the JSON object, as before)."""
    fid = f"form:y_{uuid.uuid4().hex[:6]}:1"
    stack.couch.bulk_docs(FORMS_DB, [{"_id": fid, "type": "form", "current": True}])
    r = stack.client.get("/sync/edge/forms/_changes", params={"feed": "continuous", "since": "0",
                         "style": "all_docs", "heartbeat": "10000"}, auth=EDGE_A)
    assert r.status_code == 200, r.text
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert "last_seq" in lines[-1] and all("seq" in x and "changes" in x for x in lines[:-1])
    assert fid in {x["id"] for x in lines[:-1]}
    r = stack.client.get("/sync/edge/forms/_changes", params={"feed": "longpoll", "since": "0"}, auth=EDGE_A)
    assert fid in {x["id"] for x in r.json()["results"]}
