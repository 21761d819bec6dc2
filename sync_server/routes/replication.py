"""Area-scoped CouchDB replication for PouchDB devices (/sync/submissions, /sync/forms); GET /api/v1/edges.

A PouchDB app on a phone replicates with ``http(s)://server/sync/submissions`` (Basic auth) as its remote.
Only the subset of the CouchDB API that replication uses is served, each call checked against the account:

- reads (``_changes``, ``_bulk_get``, ``GET /{doc}``) return only documents of the account's visible area:
  ``_changes`` runs the store's ``carecheck/by_area`` filter *and* checks every doc again here; a doc outside
  the area is ``forbidden`` (never its content);
- writes (``_bulk_docs``) are for collaborators only, and each doc must be a submission of the account's own
  area and name (``area`` = account area, ``submitted_by`` = account name, ``xml_sha256`` matching ``xml``);
  refused docs get a per-doc ``forbidden`` error, the rest are stored as the device made them (``new_edits:
  false``);
- checkpoints (``_local/…``) are kept per account, so one device cannot move another's;
- ``/sync/forms`` is the read-only ``carecheck_forms`` database (published forms, the same for everyone).

Errors are CouchDB-style JSON (``{"error", "reason"}``), which PouchDB understands.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from core.errors import Problem
from core.stores import FORMS_DB, doc_visible
from sync_server.auth import Account, current_account, visible_area
from sync_server.deps import ServerContext

router = APIRouter(tags=["replication"])
DBS = ("submissions", "forms")
LONGPOLL_SECONDS = 20.0      # pouchdb-server ignores `timeout` on longpoll; we bound it ourselves
LONGPOLL_EVERY = 1.0


class Refused(Exception):
    def __init__(self, status: int, error: str, reason: str):
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


Handler = Callable[..., Awaitable[Response]]


def couch_json(fn: Handler) -> Handler:
    """Render refusals and Problems as CouchDB-style JSON instead of OpenRosa XML."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await fn(*args, **kwargs)
        except Refused as exc:
            return JSONResponse({"error": exc.error, "reason": exc.reason}, status_code=exc.status)
        except Problem as exc:
            error = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(exc.status, "error")
            return JSONResponse({"error": error, "reason": exc.message_en, "reason_vi": exc.message},
                                status_code=exc.status, headers=exc.headers)

    return wrapper


async def _setup(request: Request, db: str) -> tuple[ServerContext, Account, str]:
    """(context, account, CouchDB database name) for a /sync/{db} request, or a refusal."""
    if db not in DBS:
        raise Refused(404, "not_found", f"No database {db} here; use /sync/submissions or /sync/forms.")
    ctx: ServerContext = request.app.state.ctx
    account = await current_account(request)
    if not ctx.ready:
        await run_in_threadpool(ctx.ensure_ready)
    return ctx, account, ctx.settings.submissions_db if db == "submissions" else FORMS_DB


def _visible(account: Account, db: str, doc: dict[str, Any]) -> bool:
    if db == "forms":
        return not str(doc.get("_id", "")).startswith("_design/")
    return doc.get("type") == "submission" and doc_visible(visible_area(account), doc)


def _local_path(name: str, account: Account, local: str) -> str:
    """The store path of a device checkpoint: one namespace per account (checkpoint ids are not secrets)."""
    key = f"device-{hashlib.sha256(account.name.encode()).hexdigest()[:16]}-{local}"
    return f"{quote(name, safe='')}/_local/{quote(key, safe='')}"


@router.get("/sync/")
@couch_json
async def sync_root(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    await current_account(request)
    uuid = hashlib.sha256(f"{ctx.settings.node_name}:{ctx.settings.submissions_db}".encode()).hexdigest()[:32]
    return JSONResponse({"couchdb": "Welcome", "vendor": {"name": "carecheck"}, "uuid": uuid})


@router.get("/sync/{db}")
@router.get("/sync/{db}/")
@couch_json
async def db_info(db: str, request: Request) -> Response:
    ctx, _, name = await _setup(request, db)
    info = await run_in_threadpool(ctx.couch.db_info, name)
    return JSONResponse({"db_name": db, "update_seq": info.get("update_seq"), "instance_start_time": "0"})


@router.put("/sync/{db}")
@router.put("/sync/{db}/")
@couch_json
async def db_create(db: str, request: Request) -> Response:
    await _setup(request, db)
    return JSONResponse({"error": "file_exists", "reason": "The database exists."}, status_code=412)


@router.get("/sync/{db}/_local/{local_id:path}")
@couch_json
async def get_local(db: str, local_id: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    r = await run_in_threadpool(lambda: ctx.couch.request("GET", _local_path(name, account, local_id),
                                                          action="read a checkpoint", ok=(200, 404)))
    if r.status_code == 404:
        raise Refused(404, "not_found", "missing")
    doc = dict(r.json())
    doc["_id"] = f"_local/{local_id}"
    return JSONResponse(doc)


@router.put("/sync/{db}/_local/{local_id:path}")
@couch_json
async def put_local(db: str, local_id: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    body = await request.json()
    body.pop("_id", None)

    def save() -> dict[str, Any]:
        r = ctx.couch.request("PUT", _local_path(name, account, local_id), json=body,
                              action="store a checkpoint", ok=(200, 201, 409))
        return dict(r.json()) | {"status": r.status_code}

    out = await run_in_threadpool(save)
    status = int(out.pop("status"))
    if "id" in out:
        out["id"] = f"_local/{local_id}"
    return JSONResponse(out, status_code=status)


@router.post("/sync/{db}/_revs_diff")
@couch_json
async def revs_diff(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    _may_write(account, db)
    body = await request.json()
    r = await run_in_threadpool(lambda: ctx.couch.request("POST", f"{quote(name, safe='')}/_revs_diff",
                                                          json=body, action="compare revisions"))
    return JSONResponse(r.json())


def _may_write(account: Account, db: str) -> None:
    if db != "submissions" or account.role != "collaborator":
        raise Refused(403, "forbidden", f"Account {account.name} may not write to {db}.")


def _check_doc(account: Account, doc: dict[str, Any]) -> str | None:
    """Why a pushed doc is refused, or None when it may be stored."""
    docid = str(doc.get("_id", ""))
    if not docid.startswith("uuid:"):
        return "Only submissions (ids uuid:…) may be written."
    if doc.get("_deleted"):
        return "Submissions are append-only; deletions are refused."
    if doc.get("type") != "submission":
        return "type must be 'submission'."
    if doc.get("area") != account.area:
        return f"area must be the account's area {account.area}."
    if doc.get("submitted_by") != account.name:
        return f"submitted_by must be {account.name}."
    xml = doc.get("xml")
    if not isinstance(xml, str) or hashlib.sha256(xml.encode()).hexdigest() != doc.get("xml_sha256"):
        return "xml_sha256 does not match xml."
    return None


@router.post("/sync/{db}/_bulk_docs")
@couch_json
async def bulk_docs(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    _may_write(account, db)
    body = await request.json()
    docs = body.get("docs") or []
    refused: list[dict[str, Any]] = []
    accepted: list[dict[str, Any]] = []
    for doc in docs:
        why = _check_doc(account, doc)
        if why:
            refused.append({"id": doc.get("_id"), "error": "forbidden", "reason": why})
        else:
            accepted.append(doc)
    results: list[dict[str, Any]] = []
    if accepted:
        results = await run_in_threadpool(ctx.couch.bulk_docs, name, accepted,
                                          new_edits=bool(body.get("new_edits", True)))
    return JSONResponse(results + refused, status_code=201)


@router.get("/sync/{db}/_changes")
@couch_json
async def changes(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    q = request.query_params
    since = q.get("since") or "0"
    limit = min(int(q.get("limit") or 100), 1000)
    include_docs = q.get("include_docs") == "true"
    longpoll = q.get("feed") in ("longpoll", "continuous")
    params: dict[str, Any] = {"style": q.get("style") or "main_only"}
    if db == "submissions":
        params.update({"filter": "carecheck/by_area", "area": visible_area(account)})
    deadline = time.monotonic() + LONGPOLL_SECONDS

    def page() -> tuple[list[dict[str, Any]], str]:
        results, last = ctx.couch.changes(name, since, limit=limit, include_docs=True, **params)
        out = []
        for r in results:
            doc = r.get("doc") or {}
            if r.get("deleted") or not _visible(account, db, doc):
                continue
            if not include_docs:
                r.pop("doc", None)
            out.append(r)
        return out, last

    while True:
        results, last = await run_in_threadpool(page)
        if results or not longpoll or time.monotonic() >= deadline or last != since:
            break
        await _sleep(LONGPOLL_EVERY)
    return JSONResponse({"results": results, "last_seq": _seq(last)})


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _seq(seq: str) -> Any:
    # pouchdb-server's integer seqs go back as numbers, CouchDB's opaque strings as strings.
    return int(seq) if seq.isdigit() else seq


@router.post("/sync/{db}/_bulk_get")
@couch_json
async def bulk_get(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    body = await request.json()
    q = dict(request.query_params)
    r = await run_in_threadpool(lambda: ctx.couch.request(
        "POST", f"{quote(name, safe='')}/_bulk_get", params=q, json=body, action="read documents"))
    data = r.json()
    for result in data.get("results", []):
        for item in result.get("docs", []):
            doc = item.get("ok")
            if doc is not None and not _visible(account, db, doc):
                item.pop("ok")
                item["error"] = {"id": result.get("id"), "rev": doc.get("_rev"), "error": "forbidden",
                                 "reason": "Outside your area."}
    return JSONResponse(data)


@router.get("/sync/{db}/{docid:path}")
@couch_json
async def get_doc(db: str, docid: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    if docid.startswith("_"):
        raise Refused(404, "not_found", "Not served here.")
    q = dict(request.query_params)
    r = await run_in_threadpool(lambda: ctx.couch.request(
        "GET", f"{quote(name, safe='')}/{quote(docid, safe='')}", params=q, ok=(200, 404),
        headers={"Accept": "application/json"}, action="read a document"))
    if r.status_code == 404:
        raise Refused(404, "not_found", "missing")
    data = r.json()
    docs = [d.get("ok") for d in data] if isinstance(data, list) else [data]
    if any(d is not None and not _visible(account, db, d) for d in docs):
        raise Refused(404, "not_found", "missing")  # outside the area: do not reveal it exists
    return Response(json.dumps(data), media_type="application/json")
