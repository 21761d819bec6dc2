"""Replication for enrolled edge nodes: ``/sync/edge/{submissions,forms,accounts}`` and ``/sync/edge/report``.

An edge's CouchDB ``_replicator`` (pouchdb-server or CouchDB) replicates with these URLs as if they were
databases, Basic auth with the edge credential (``sync_server.edges``); every call is checked against it:

- ``submissions``: **push only** — ``_revs_diff``, ``_bulk_docs`` and ``PUT {docid}`` (Apache CouchDB's
  replicator, a record with attachments as ``multipart/related``), through the write rule, the edge vouching
  for each record's collaborator (``edges.vouched_author``), and ``_held`` (for ``carecheck edge status``:
  which of the edge's records the province holds, by id and XML hash). No read of any record;
- ``forms``: read only, the published forms (``_changes``, ``_all_docs`` with ``keys``, ``_bulk_get``, a
  document, an attachment);
- ``accounts``: read only, the collaborator accounts of the edge's area, each stripped to
  ``edges.DEVICE_ACCOUNT_FIELDS``;
- checkpoints (``_local/…``) in the edge account's own namespace;
- ``PUT /sync/edge/report``: the edge's status report, stored as ``edge:<area>`` in ``carecheck_edges``.

Request bodies may be gzip-compressed (``carecheck edge uplink``) and are bounded before and after
decompression. pouchdb-server's replicator fetches first-generation documents with ``POST _all_docs`` and
attachments one by one (checked on 4.2.0), hence those two routes. Any other account gets 403; a revoked edge
gets ``403 edge_revoked`` (``auth``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
import zlib
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from core.couch import Doc, DocExists
from core.errors import Forbidden, Problem
from core.stores import ACCOUNTS_FILTER, EDGES_DB, FORMS_DB
from sync_server import edges
from sync_server.auth import Account, client_address, current_account
from sync_server.deps import ServerContext
from sync_server.routes.replication import Refused, couch_json

router = APIRouter(tags=["edge replication"])
DBS = ("submissions", "forms", "accounts")
READ_DBS = ("forms", "accounts")
LONGPOLL_SECONDS = 20.0
MAX_DOCS = 1000
MAX_REPORT_BYTES = 262_144
_SEQ = re.compile(r"^[A-Za-z0-9_.:=+/-]{1,500}$")  # CouchDB's opaque sequences; pouchdb-server's integers


def _bad(reason: str) -> Refused:
    return Refused(400, "bad_request", reason)


async def _edge(request: Request) -> tuple[ServerContext, Account]:
    ctx: ServerContext = request.app.state.ctx
    account = await current_account(request)
    if account.role != edges.EDGE_ROLE:
        raise Forbidden(f"Chỉ nút biên đã đăng ký dùng /sync/edge; tài khoản {account.name} thì không.",
                        f"Only enrolled edge nodes use /sync/edge; account {account.name} is not one.")
    if not ctx.ready:
        await run_in_threadpool(ctx.ensure_ready)
    return ctx, account


async def _setup(request: Request, db: str, allowed: tuple[str, ...] = DBS
                 ) -> tuple[ServerContext, Account, str]:
    """(context, edge, CouchDB database) for a /sync/edge/{db} call this edge may make, or a refusal."""
    ctx, account = await _edge(request)
    if db not in DBS:
        raise Refused(404, "not_found", f"No database {db[:40]} for edges here.")
    if db not in allowed:  # e.g. reading records back, or writing forms and accounts
        raise Refused(403, "forbidden", f"Edges may not do this on {db}.")
    name = {"submissions": ctx.settings.submissions_db, "forms": FORMS_DB,
            "accounts": ctx.settings.accounts_db}[db]
    return ctx, account, name


async def _body(request: Request, limit: int) -> Any:
    """The JSON body, gzip-compressed or not (the uplink relay compresses), at most ``limit`` bytes."""
    raw = await _raw(request, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad("The request body is not valid JSON.") from None


async def _raw(request: Request, limit: int) -> bytes:
    """The body's bytes, gunzipped when sent gzip-compressed, at most ``limit`` bytes before and after."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"The body exceeds {limit} bytes.")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise Refused(413, "too_large", f"The body exceeds {limit} bytes.")
    raw = bytes(buf)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = d.decompress(raw, limit + 1)
        except zlib.error:
            raise _bad("The gzip body is damaged.") from None
        if len(raw) > limit or d.unconsumed_tail:
            raise Refused(413, "too_large", f"The body exceeds {limit} bytes once decompressed.")
    return raw


async def _object(request: Request, ctx: ServerContext, limit: int | None = None) -> dict[str, Any]:
    body = await _body(request, limit or ctx.settings.max_submission_bytes)
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    return body


def _visible(edge: Account, db: str, doc: Doc) -> bool:
    if str(doc.get("_id", "")).startswith("_design/"):
        return False
    if db == "forms":
        return True
    if db == "accounts":
        return edges.account_visible(edge, doc)
    return False  # an edge reads no record back


def _shape(db: str, doc: Doc) -> Doc:
    return edges.device_account(doc) if db == "accounts" else doc


def _local_path(name: str, edge: Account, local: str) -> str:
    """An edge's replication checkpoints, in its own namespace (never a phone's or another edge's)."""
    return f"{quote(name, safe='')}/_local/{quote(f'edge-{edge.name}-{local}', safe='')}"


@router.get("/sync/edge/")
@router.get("/sync/edge")
@couch_json
async def edge_root(request: Request) -> Response:
    """Who the province takes this edge for (``edge status`` checks its credential here)."""
    _, edge = await _edge(request)
    return JSONResponse({"couchdb": "Welcome", "vendor": {"name": "carecheck"}, "edge": edge.name,
                         "area": edge.area, "node_name": edges.node_name(edge.area)})


@router.put("/sync/edge/report")
@couch_json
async def put_report(request: Request) -> Response:
    """The edge's latest status report, kept as ``edge:<area>`` in the province's ``carecheck_edges``."""
    ctx, edge = await _edge(request)
    body = await _object(request, ctx, MAX_REPORT_BYTES)
    report = body.get("report")
    if not isinstance(report, dict):
        raise _bad("report must be a JSON object.")
    fields = {k: str(body[k])[:200] for k in ("central_url", "configured_at", "via")
              if body.get(k) is not None}
    doc_id = f"edge:{edge.area}"

    def save() -> None:
        ctx.couch.ensure_db(EDGES_DB)
        for _ in range(5):
            doc = ctx.couch.get(EDGES_DB, doc_id) or {"_id": doc_id}
            doc.pop("central_user", None)  # replicated up by a pre-enrolment edge
            doc.update(fields)
            doc.update({"type": "edge", "area": edge.area, "node_name": edges.node_name(edge.area),
                        "edge_id": edge.name, "report": report})
            try:
                ctx.couch.save(EDGES_DB, doc)
                return
            except DocExists:  # a concurrent report: read again and retry
                continue

    await run_in_threadpool(save)
    return JSONResponse({"ok": True}, status_code=201)


@router.get("/sync/edge/{db}")
@router.get("/sync/edge/{db}/")
@couch_json
async def db_info(db: str, request: Request) -> Response:
    ctx, _, name = await _setup(request, db)
    info = await run_in_threadpool(ctx.couch.db_info, name)
    return JSONResponse({"db_name": db, "update_seq": info.get("update_seq"), "instance_start_time": "0"})


@router.put("/sync/edge/{db}")
@router.put("/sync/edge/{db}/")
@couch_json
async def db_create(db: str, request: Request) -> Response:
    await _setup(request, db)
    return JSONResponse({"error": "file_exists", "reason": "The database exists."}, status_code=412)


@router.get("/sync/edge/{db}/_local/{local_id:path}")
@couch_json
async def get_local(db: str, local_id: str, request: Request) -> Response:
    ctx, edge, name = await _setup(request, db)
    r = await run_in_threadpool(lambda: ctx.couch.request("GET", _local_path(name, edge, local_id),
                                                          action="read a checkpoint", ok=(200, 404)))
    if r.status_code == 404:
        raise Refused(404, "not_found", "missing")
    return JSONResponse(dict(r.json()) | {"_id": f"_local/{local_id}"})


@router.put("/sync/edge/{db}/_local/{local_id:path}")
@couch_json
async def put_local(db: str, local_id: str, request: Request) -> Response:
    ctx, edge, name = await _setup(request, db)
    body = await _object(request, ctx, 65_536)
    body.pop("_id", None)
    if any(k.startswith("_") and k != "_rev" for k in body):
        raise _bad("A checkpoint may carry no _ fields but _rev.")

    def save() -> tuple[int, dict[str, Any]]:
        r = ctx.couch.request("PUT", _local_path(name, edge, local_id), json=body,
                              action="store a checkpoint", ok=(200, 201, 400, 409))
        return r.status_code, dict(r.json())

    status, out = await run_in_threadpool(save)
    if "id" in out:
        out["id"] = f"_local/{local_id}"
    return JSONResponse(out, status_code=status)


# --- submissions: push only -------------------------------------------------------------------------------


def _revs_body(body: dict[str, Any]) -> dict[str, list[str]]:
    if len(body) > MAX_DOCS:
        raise _bad(f"At most {MAX_DOCS} ids per request.")
    for k, v in body.items():
        if not isinstance(v, list) or not all(isinstance(r, str) and len(r) < 200 for r in v):
            raise _bad(f"_revs_diff wants {{id: [rev, ...]}}; {str(k)[:60]!r} is not.")
    return body


@router.post("/sync/edge/{db}/_revs_diff")
@couch_json
async def revs_diff(db: str, request: Request) -> Response:
    ctx, _, name = await _setup(request, db, ("submissions",))
    body = _revs_body(await _object(request, ctx))
    r = await run_in_threadpool(lambda: ctx.couch.request("POST", f"{quote(name, safe='')}/_revs_diff",
                                                          json=body, action="compare revisions"))
    return JSONResponse(r.json())


@router.post("/sync/edge/{db}/_held")
@couch_json
async def held(db: str, request: Request) -> Response:
    """``{id: xml_sha256}`` → which of these records the province does not hold (``missing``) and which it
    holds with other content (``different``). Tells the edge nothing it does not already know."""
    ctx, _, _ = await _setup(request, db, ("submissions",))
    body = await _object(request, ctx)
    if len(body) > MAX_DOCS or not all(isinstance(v, str) for v in body.values()):
        raise _bad(f"_held wants {{id: xml_sha256}}, at most {MAX_DOCS} ids.")

    def check() -> dict[str, list[str]]:
        stored = ctx.submissions.lookup(list(body))
        held_ = {i: d for i, d in stored.items() if d is not None and not d.get("_deleted")}
        return {"missing": sorted(i for i in body if i not in held_),
                "different": sorted(i for i, d in held_.items() if d.get("xml_sha256") != body[i])}

    return JSONResponse(await run_in_threadpool(check))


@router.post("/sync/edge/{db}/_bulk_docs")
@couch_json
async def bulk_docs(db: str, request: Request) -> Response:
    from sync_server.routes.replication import push

    ctx, edge, _ = await _setup(request, db, ("submissions",))
    body = await _object(request, ctx)
    docs = body.get("docs")
    if not isinstance(docs, list) or len(docs) > MAX_DOCS:
        raise _bad(f"docs must be a list of at most {MAX_DOCS} documents.")
    new_edits = body.get("new_edits", True)
    if not isinstance(new_edits, bool):
        raise _bad("new_edits must be true or false.")
    results = await run_in_threadpool(push, ctx, edge, docs, new_edits=new_edits,
                                      route="POST /sync/edge/submissions/_bulk_docs",
                                      client=client_address(request))
    return JSONResponse(results, status_code=201)


@router.put("/sync/edge/{db}/{docid}")
@couch_json
async def put_doc(db: str, docid: str, request: Request) -> Response:
    """One record as Apache CouchDB's replicator pushes a document with attachments: ``PUT {docid}?new_edits=
    false``, ``multipart/related`` (attachments over 64 KB, or a later revision naming what the province
    holds as stubs; pouchdb-server's replicator sends everything through ``_bulk_docs``). The same write rule
    as ``_bulk_docs``; a new record naming an attachment by stub answers 412 ``missing_stub``, on which
    CouchDB's replicator fetches the document again with every attachment and resends it."""
    from sync_server.bodies import related_doc
    from sync_server.routes.replication import push

    ctx, edge, _ = await _setup(request, db, ("submissions",))
    raw = await _raw(request, ctx.settings.max_submission_bytes)
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/related"):
        try:
            doc: Any = related_doc(raw, ctype)
        except Problem as exc:
            raise _bad(exc.message_en) from None
    else:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            raise _bad("The request body is not valid JSON.") from None
    if not isinstance(doc, dict) or doc.get("_id", docid) != docid:
        raise _bad("The body must be the document named in the URL.")
    doc["_id"] = docid
    new_edits = request.query_params.get("new_edits", "true") != "false"
    [result] = await run_in_threadpool(push, ctx, edge, [doc], new_edits=new_edits,
                                       route="PUT /sync/edge/submissions/{docid}",
                                       client=client_address(request))
    if "error" not in result:
        return JSONResponse({"ok": True, "id": docid, "rev": result.get("rev")}, status_code=201)
    if result.get("reason_code") == "missing_stub":
        return JSONResponse({"error": "missing_stub", "reason": result.get("reason")}, status_code=412)
    return JSONResponse({"error": "forbidden", "reason": result.get("reason"),
                         "reason_code": result.get("reason_code")}, status_code=403)


# --- forms and accounts: read only ------------------------------------------------------------------------


def _changes_params(edge: Account, db: str) -> dict[str, Any]:
    if db == "accounts":
        return {"filter": ACCOUNTS_FILTER, "areas": ",".join(edges.edge_areas(edge))}
    return {}


@router.get("/sync/edge/{db}/_changes")
@couch_json
async def changes(db: str, request: Request) -> Response:
    ctx, edge, name = await _setup(request, db, READ_DBS)
    q = request.query_params
    since = q.get("since") or "0"
    if not _SEQ.match(since):
        raise _bad("since must be a sequence from an earlier answer, or 0.")
    try:
        limit = max(1, min(int(q.get("limit") or 100), 1000))
    except ValueError:
        raise _bad("limit must be a whole number.") from None
    include_docs = q.get("include_docs") == "true"
    longpoll = q.get("feed") in ("longpoll", "continuous")
    style = q.get("style") or "main_only"
    if style not in ("main_only", "all_docs"):
        raise _bad("style must be main_only or all_docs.")
    params = {"style": style, **_changes_params(edge, db)}
    deadline = time.monotonic() + LONGPOLL_SECONDS

    def page() -> tuple[list[dict[str, Any]], str]:
        results, last = ctx.couch.changes(name, since, limit=limit, include_docs=True, **params)
        out = []
        for r in results:
            doc = r.pop("doc", None) or {}
            if not r.get("deleted") and not _visible(edge, db, doc):
                continue
            if str(r.get("id", "")).startswith("_design/"):
                continue
            if include_docs and not r.get("deleted"):
                r["doc"] = _shape(db, doc)
            out.append(r)
        return out, last

    while True:
        results, last = await run_in_threadpool(page)
        if results or not longpoll or time.monotonic() >= deadline or last != since:
            break
        await asyncio.sleep(1.0)
    last_seq: Any = int(last) if last.isdigit() else last
    if q.get("feed") == "continuous":
        # Apache CouchDB's replicator reads a continuous feed line by line (one change per line, then the
        # last_seq line); ended after one page, as CouchDB ends one at its timeout: it reconnects from there.
        lines = [json.dumps(r) for r in results] + [json.dumps({"last_seq": last_seq})]
        return Response("\n".join(lines) + "\n", media_type="application/json")
    return JSONResponse({"results": results, "last_seq": last_seq})


def _keys(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list) or len(items) > MAX_DOCS:
        raise _bad(f"{key} must be a list of at most {MAX_DOCS} entries.")
    return items


@router.post("/sync/edge/{db}/_all_docs")
@couch_json
async def all_docs(db: str, request: Request) -> Response:
    """Only with ``keys`` (pouchdb's replicator fetches first-generation documents this way); no listing."""
    ctx, edge, name = await _setup(request, db, READ_DBS)
    keys = _keys(await _object(request, ctx), "keys")
    if not all(isinstance(k, str) for k in keys):
        raise _bad("keys must be document ids.")
    params = {k: v for k, v in request.query_params.items()
              if k in ("include_docs", "conflicts") and v in ("true", "false")}

    def read() -> dict[str, Any]:
        r = ctx.couch.request("POST", f"{quote(name, safe='')}/_all_docs", params={**params, "include_docs":
                              "true"}, json={"keys": keys}, action="read documents")
        rows = []
        for row in r.json().get("rows", []):
            doc = row.get("doc")
            if "error" in row or (doc is not None and not _visible(edge, db, doc)) or \
                    (doc is None and not (row.get("value") or {}).get("deleted")):
                rows.append({"key": row.get("key"), "error": "not_found"})
                continue
            if params.get("include_docs") == "true" and doc is not None:
                row["doc"] = _shape(db, doc)
            else:
                row.pop("doc", None)
            rows.append(row)
        return {"total_rows": len(rows), "offset": 0, "rows": rows}

    return JSONResponse(await run_in_threadpool(read))


@router.post("/sync/edge/{db}/_bulk_get")
@couch_json
async def bulk_get(db: str, request: Request) -> Response:
    ctx, edge, name = await _setup(request, db, READ_DBS)
    docs = _keys(await _object(request, ctx), "docs")
    if not all(isinstance(d, dict) and isinstance(d.get("id"), str) for d in docs):
        raise _bad("each entry of docs needs an id (a string).")
    q = {k: v for k, v in request.query_params.items()
         if k in ("revs", "attachments", "latest") and v in ("true", "false")}

    def read() -> dict[str, Any]:
        r = ctx.couch.request("POST", f"{quote(name, safe='')}/_bulk_get", params=q, json={"docs": docs},
                              action="read documents")
        data = dict(r.json())
        for result in data.get("results", []):
            for item in result.get("docs", []):
                doc = item.get("ok")
                if doc is None:
                    continue
                if doc.get("_deleted") or _visible(edge, db, doc):
                    item["ok"] = _shape(db, doc)
                else:
                    item.pop("ok")
                    item["error"] = {"id": result.get("id"), "rev": doc.get("_rev"), "error": "not_found",
                                     "reason": "missing"}
        return data

    return JSONResponse(await run_in_threadpool(read))


def _mixed(results: list[Any]) -> Response:
    """``open_revs`` answered as Apache CouchDB's replicator asks for it (``Accept: multipart/mixed``; its
    parser accepts nothing else): one ``application/json`` part per revision, ``{"missing": rev}`` for one
    not here, attachments inline (base64) when asked for, which its document parser reads as CouchDB's own."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for r in results:
        part = r.get("ok") if isinstance(r, dict) and "ok" in r else r
        out += f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode()
        out += json.dumps(part).encode() + b"\r\n"
    out += f"--{boundary}--".encode()
    return Response(bytes(out), media_type=f'multipart/mixed; boundary="{boundary}"')


_GET_PARAMS = {"rev", "revs", "revs_info", "open_revs", "latest", "attachments", "atts_since", "conflicts"}


@router.get("/sync/edge/{db}/{path:path}")
@couch_json
async def get_doc(db: str, path: str, request: Request) -> Response:
    """A document, or (``{docid}/{attachment}``) a form's attachment. Ids here never contain ``/``."""
    ctx, edge, name = await _setup(request, db, READ_DBS)
    docid, _, att = path.partition("/")
    if not docid or docid.startswith("_"):
        raise Refused(404, "not_found", "Not served here.")
    q = {k: v for k, v in request.query_params.items() if k in _GET_PARAMS}
    doc_path = f"{quote(name, safe='')}/{quote(docid, safe='')}"

    def read() -> Response:
        meta = ctx.couch.request("GET", doc_path, params={"rev": q["rev"]} if att and "rev" in q else
                                 ({} if att else q), ok=(200, 400, 404),
                                 headers={"Accept": "application/json"}, action="read a document")
        if meta.status_code != 200:
            raise Refused(404, "not_found", "missing")
        data = meta.json()
        docs = [d.get("ok") for d in data if isinstance(d, dict)] if isinstance(data, list) else [data]
        if any(d is not None and not d.get("_deleted") and not _visible(edge, db, d) for d in docs):
            raise Refused(404, "not_found", "missing")  # not this edge's: do not reveal it exists
        if not att:
            shaped: Any = ([{**d, "ok": _shape(db, d["ok"])} if isinstance(d, dict) and d.get("ok") else d
                            for d in data] if isinstance(data, list) else _shape(db, data))
            if isinstance(shaped, list) and "multipart/mixed" in request.headers.get("accept", ""):
                return _mixed(shaped)
            return Response(json.dumps(shaped), media_type="application/json")
        if db != "forms":
            raise Refused(404, "not_found", "missing")
        r = ctx.couch.request("GET", f"{doc_path}/{quote(att, safe='')}", params=q, ok=(200, 404),
                              action="read an attachment")
        if r.status_code != 200:
            raise Refused(404, "not_found", "missing")
        return Response(r.content, media_type=r.headers.get("content-type", "application/octet-stream"))

    return await run_in_threadpool(read)
