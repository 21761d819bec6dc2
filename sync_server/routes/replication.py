"""Least-privilege replication for PouchDB devices (/sync/submissions, /sync/forms); GET /api/v1/edges.

A PouchDB app on a phone replicates with ``http(s)://server/sync/submissions`` (Basic auth) as its remote.
Only the subset of the CouchDB API that replication uses is served, each call checked against the account:

- reads (``_changes``, ``_bulk_get``, ``GET /{doc}``, ``_revs_diff``): a collaborator's device sees the
  records it submitted itself and nothing else (``_changes`` runs the store's ``carecheck/by_submitter``
  filter *and* checks every doc again here; ``_bulk_get`` and ``GET`` answer ``not_found`` for any other
  record, never its content); officers see their area (``carecheck/by_area``); ``_all_docs`` is not served;
- writes (``_bulk_docs``, also ``new_edits:false`` with any ``_rev``) go through ``sync_server.writerule``:
  create-only, an identical resend acknowledged, anything else under an existing id refused per document
  (``forbidden``, recorded in the audit log); ``submitted_by``/``area`` and the other server fields are set
  by the server;
- checkpoints (``_local/…``) are kept per account, so one device cannot move another's;
- ``/sync/forms`` is the read-only ``carecheck_forms`` database (published forms, the same for everyone);
- every body is read within ``max_submission_bytes`` (413) and checked for shape: malformed input is a 400,
  never a 500.

Errors are CouchDB-style JSON (``{"error", "reason"}``), which PouchDB understands.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
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
from sync_server import edges, writerule
from sync_server.auth import EDGE_ROLE, Account, AuthChallenge, client_address, current_account, visible_area
from sync_server.bodies import json_body, json_object
from sync_server.deps import ServerContext
from sync_server.store import utc_now

router = APIRouter(tags=["replication"])
DBS = ("submissions", "forms")
LONGPOLL_SECONDS = 20.0  # pouchdb-server ignores `timeout` on longpoll; we bound it ourselves
LONGPOLL_EVERY = 1.0
MAX_DOCS = 1000  # documents (or ids) in one _bulk_docs / _bulk_get / _revs_diff
MAX_LOCAL_BYTES = 65_536  # a replication checkpoint is a few hundred bytes
_LOCAL_ID = re.compile(r"^[A-Za-z0-9._:+=-]{1,200}$")
_SEQ = re.compile(r"^[A-Za-z0-9_.:=+/-]{1,500}$")


class Refused(Exception):
    def __init__(self, status: int, error: str, reason: str):
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def _bad(reason: str) -> Refused:
    return Refused(400, "bad_request", reason)


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
            error = {
                400: "bad_request",
                401: "unauthorized",
                403: "forbidden",
                404: "not_found",
                413: "too_large",
                429: "too_many_requests",
            }.get(exc.status, "error")
            resp = JSONResponse(
                {"error": error, "reason": exc.message_en, "reason_vi": exc.message, "code": exc.code},
                status_code=exc.status,
                headers=exc.headers,
            )
            for challenge in exc.challenges if isinstance(exc, AuthChallenge) else []:
                resp.headers.append("WWW-Authenticate", challenge)  # so a Digest client can answer
            return resp

    return wrapper


async def _setup(request: Request, db: str) -> tuple[ServerContext, Account, str]:
    """(context, account, CouchDB database name) for a /sync/{db} request, or a refusal."""
    if db not in DBS:
        raise Refused(404, "not_found", "No database here; use /sync/submissions or /sync/forms.")
    ctx: ServerContext = request.app.state.ctx
    account = await current_account(request)
    if account.role == EDGE_ROLE:  # an edge has its own, narrower contract: routes/edge_sync.py
        raise Refused(403, "forbidden", "Edge nodes replicate through /sync/edge/…, not /sync/{db}.")
    if not ctx.ready:
        await run_in_threadpool(ctx.ensure_ready)
    return ctx, account, ctx.settings.submissions_db if db == "submissions" else FORMS_DB


async def _json(request: Request, ctx: ServerContext) -> dict[str, Any]:
    """A JSON object body within the submission size limit (413), else a 400."""
    try:
        return json_object(await json_body(request, ctx.settings.max_submission_bytes))
    except Problem as exc:
        if exc.status == 400:
            raise _bad(exc.message_en) from exc
        raise


def _visible(account: Account, db: str, doc: dict[str, Any]) -> bool:
    """What a /sync reader may read: forms (not design docs); a collaborator its own records; an officer
    the records of its area."""
    if db == "forms":
        return not str(doc.get("_id", "")).startswith("_design/")
    if doc.get("type") != "submission":
        return False
    if account.role == "collaborator":
        return doc.get("submitted_by") == account.name
    return doc_visible(visible_area(account), doc)


def _local_path(name: str, account: Account, local: str) -> str:
    """The store path of a device checkpoint: one namespace per account (checkpoint ids are not secrets)."""
    key = f"device-{hashlib.sha256(account.name.encode()).hexdigest()[:16]}-{local}"
    return f"{quote(name, safe='')}/_local/{quote(key, safe='')}"


def _local_id(local_id: str) -> str:
    if not _LOCAL_ID.match(local_id):
        raise _bad("A checkpoint id is 1-200 letters, digits and ._:+=-.")
    return local_id


@router.get("/sync/")
@couch_json
async def sync_root(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    if (await current_account(request)).role == EDGE_ROLE:
        raise Refused(403, "forbidden", "Edge nodes replicate through /sync/edge/…, not /sync/{db}.")
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
    _local_id(local_id)
    r = await run_in_threadpool(
        lambda: ctx.couch.request(
            "GET", _local_path(name, account, local_id), action="read a checkpoint", ok=(200, 404)
        )
    )
    if r.status_code == 404:
        raise Refused(404, "not_found", "missing")
    doc = dict(r.json())
    doc["_id"] = f"_local/{local_id}"
    return JSONResponse(doc)


@router.put("/sync/{db}/_local/{local_id:path}")
@couch_json
async def put_local(db: str, local_id: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    _local_id(local_id)
    try:
        body = json_object(await json_body(request, MAX_LOCAL_BYTES), "A checkpoint")
    except Problem as exc:
        if exc.status == 400:
            raise _bad(exc.message_en) from exc
        raise
    body.pop("_id", None)
    if "_rev" in body and not isinstance(body["_rev"], str):
        raise _bad("_rev must be a string.")
    if any(k.startswith("_") and k != "_rev" for k in body):
        raise _bad("A checkpoint may carry no _ fields but _rev.")

    def save() -> dict[str, Any]:
        r = ctx.couch.request(
            "PUT",
            _local_path(name, account, local_id),
            json=body,
            action="store a checkpoint",
            ok=(200, 201, 400, 409),
        )
        return dict(r.json()) | {"status": r.status_code}

    out = await run_in_threadpool(save)
    status = int(out.pop("status"))
    if "id" in out:
        out["id"] = f"_local/{local_id}"
    return JSONResponse(out, status_code=status)


def _revs_request(body: dict[str, Any]) -> dict[str, list[str]]:
    if len(body) > MAX_DOCS:
        raise _bad(f"At most {MAX_DOCS} ids per request.")
    for k, v in body.items():
        if (
            not isinstance(v, list)
            or not all(isinstance(r, str) and len(r) < 200 for r in v)
            or len(v) > 1000
        ):
            raise _bad(f"_revs_diff wants {{id: [rev, ...]}}; {str(k)[:60]!r} is not.")
    return body


@router.post("/sync/{db}/_revs_diff")
@couch_json
async def revs_diff(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    _may_write(account, db)
    body = _revs_request(await _json(request, ctx))

    def diff() -> dict[str, Any]:
        stored = ctx.submissions.lookup(list(body))
        # Another's record (or a deleted one) is reported missing, as an unknown id would be: the device then
        # pushes it and gets a per-document refusal, and learns nothing about what the store holds.
        mine = {
            i: revs
            for i, revs in body.items()
            if stored.get(i) is None or _visible(account, db, stored[i] or {})
        }
        out: dict[str, Any] = {i: {"missing": revs} for i, revs in body.items() if i not in mine and revs}
        if mine:
            r = ctx.couch.request(
                "POST", f"{quote(name, safe='')}/_revs_diff", json=mine, action="compare revisions"
            )
            out.update(r.json())
        return out

    return JSONResponse(await run_in_threadpool(diff))


def _may_write(account: Account, db: str) -> None:
    if db != "submissions" or account.role not in writerule.SUBMITTING_ROLES:
        raise Refused(403, "forbidden", f"Account {account.name} may not write to {db}.")


@router.post("/sync/{db}/_bulk_docs")
@couch_json
async def bulk_docs(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    _may_write(account, db)
    body = await _json(request, ctx)
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise _bad("docs must be a list of documents.")
    if len(docs) > MAX_DOCS:
        raise _bad(f"At most {MAX_DOCS} documents per request.")
    new_edits = body.get("new_edits", True)
    if not isinstance(new_edits, bool):
        raise _bad("new_edits must be true or false.")
    if not new_edits and any(isinstance(d, dict) and not isinstance(d.get("_rev"), str) for d in docs):
        raise _bad("With new_edits:false every document needs its _rev.")
    results = await run_in_threadpool(
        push,
        ctx,
        account,
        docs,
        new_edits=new_edits,
        route=f"POST /sync/{db}/_bulk_docs",
        client=client_address(request),
    )
    return JSONResponse(results, status_code=201)


def push(
    ctx: ServerContext,
    account: Account,
    docs: list[Any],
    *,
    new_edits: bool,
    route: str,
    client: str | None = None,
) -> list[dict[str, Any]]:
    """Apply the write rule to pushed documents and store what it accepts; CouchDB-style per-doc results.

    Refusals use ``error: forbidden`` (PouchDB's replicator reports a forbidden doc as ``denied`` and goes
    on; any other error would stop the whole replication), with the rule's code in ``reason_code`` and its
    words in ``reason`` (English) and ``reason_vi`` (the field app shows the code's text in the phone's
    language).
    """
    now = utc_now()
    if account.role == EDGE_ROLE:  # an enrolled edge pushes on behalf of its area's collaborators (rule 6)
        authors = edges.accounts_named(ctx.couch, ctx.settings, docs)
        pushed = [writerule.stamp_edge_pushed(account, d, authors, now) for d in docs]
    else:
        pushed = [writerule.stamp_pushed(account, d, ctx.settings.node_name, now) for d in docs]
    wanted = [p.doc_id for p in pushed if p.doc is not None]
    wanted += [p.deprecated_id for p in pushed if p.deprecated_id]
    stored = ctx.submissions.lookup(wanted)
    if account.role != EDGE_ROLE:  # rule 7 for what would be new (an edge's pushes were judged at the edge)
        for p in pushed:
            if p.doc is not None and p.refusal is None and stored.get(p.doc_id) is None:
                try:
                    ctx.forms.require(str(p.doc["form_id"]), p.doc.get("form_version"))
                except Problem as exc:
                    p.refusal = writerule.form_unknown(p.doc_id, exc)
    writerule.decide_batch(account, pushed, stored)
    to_store = [p.doc for p in pushed if p.doc is not None and not p.refusal and not p.duplicate]
    written = {str(r.get("id")): r for r in ctx.submissions.push(to_store, new_edits=new_edits)}
    results: list[dict[str, Any]] = []
    refusals: list[tuple[str, writerule.Refusal]] = []
    for p in pushed:
        if p.refusal is not None:
            refusals.append((p.doc_id, p.refusal))
            results.append(
                {
                    "id": p.doc_id,
                    "error": "forbidden",
                    "name": "forbidden",
                    "reason": p.refusal.message_en,
                    "reason_vi": p.refusal.message,
                    "reason_code": p.refusal.reason,
                }
            )
        elif p.duplicate:  # already stored: nothing written, unless it brings attachments the store lacks
            held = stored.get(p.doc_id) or {}
            rev = held.get("_rev")
            if p.doc is not None and set(p.attachments) - set(held.get("_attachments") or {}):
                ctx.submissions.complete(p.doc, _inline(p.doc))
            results.append({"id": p.doc_id, "ok": True, "rev": rev})
        else:
            r = written.get(p.doc_id)
            if r is None:  # new_edits:false successes may be left out of CouchDB's answer
                results.append({"id": p.doc_id, "ok": True, "rev": (p.doc or {}).get("_rev")})
            elif r.get("error"):
                # Taken meanwhile (a race with another write), refused by validate_doc_update, or a document
                # the store could not take (reported as malformed, with the store's reason).
                if r.get("error") in ("conflict", "forbidden"):
                    refusal = writerule.overwrite_refusal(p.doc_id)
                else:
                    refusal = writerule.bad_doc(p.doc_id, str(r.get("reason") or r.get("error"))[:200])
                refusals.append((p.doc_id, refusal))
                results.append(
                    {
                        "id": p.doc_id,
                        "error": "forbidden",
                        "name": "forbidden",
                        "reason": refusal.message_en,
                        "reason_vi": refusal.message,
                        "reason_code": refusal.reason,
                    }
                )
            else:
                results.append(r)
    if refusals:
        writerule.record_refusals(ctx.couch, ctx.settings, account, route, refusals, client)
    return results


def _inline(doc: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """A pushed doc's inline attachments (base64, checked by the write rule) as (content type, bytes)."""
    return {
        str(name): (str(att.get("content_type") or "application/octet-stream"), base64.b64decode(att["data"]))
        for name, att in (doc.get("_attachments") or {}).items()
        if "data" in att
    }


def _int_param(q: Any, key: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{key} must be a whole number.") from None
    if value < lo:
        raise _bad(f"{key} must be at least {lo}.")
    return min(value, hi)


@router.get("/sync/{db}/_changes")
@couch_json
async def changes(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    q = request.query_params
    since = q.get("since") or "0"
    if since != "now" and not _SEQ.match(since):
        raise _bad("since must be a sequence from an earlier answer, 0 or now.")
    limit = _int_param(q, "limit", 100, 0, 1000) or 1
    include_docs = q.get("include_docs") == "true"
    feed = q.get("feed") or "normal"
    if feed not in ("normal", "longpoll", "continuous"):
        raise _bad("feed must be normal, longpoll or continuous.")
    longpoll = feed != "normal"
    style = q.get("style") or "main_only"
    if style not in ("main_only", "all_docs"):
        raise _bad("style must be main_only or all_docs.")
    params: dict[str, Any] = {"style": style}
    if db == "submissions":
        if account.role == "collaborator":
            params.update({"filter": "carecheck/by_submitter", "name": account.name})
        else:
            params.update({"filter": "carecheck/by_area", "area": visible_area(account)})
    if since == "now":
        info = await run_in_threadpool(ctx.couch.db_info, name)
        since = str(info.get("update_seq", "0"))
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
        await asyncio.sleep(LONGPOLL_EVERY)
    return JSONResponse({"results": results, "last_seq": _seq(last)})


def _seq(seq: str) -> Any:
    # pouchdb-server's integer seqs go back as numbers, CouchDB's opaque strings as strings.
    return int(seq) if seq.isdigit() else seq


def _bulk_get_request(body: dict[str, Any]) -> list[dict[str, Any]]:
    docs = body.get("docs")
    if not isinstance(docs, list) or len(docs) > MAX_DOCS:
        raise _bad(f"docs must be a list of at most {MAX_DOCS} {{id, rev}} objects.")
    for d in docs:
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not d["id"]:
            raise _bad("each entry of docs needs an id (a string).")
        if "rev" in d and not isinstance(d["rev"], str):
            raise _bad("rev must be a string.")
        if "atts_since" in d and (
            not isinstance(d["atts_since"], list) or not all(isinstance(x, str) for x in d["atts_since"])
        ):
            raise _bad("atts_since must be a list of revisions.")
    return docs


_BULK_GET_PARAMS = ("revs", "attachments", "latest", "att_encoding_info")


@router.post("/sync/{db}/_bulk_get")
@couch_json
async def bulk_get(db: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    docs = _bulk_get_request(await _json(request, ctx))
    q = {k: v for k, v in request.query_params.items() if k in _BULK_GET_PARAMS and v in ("true", "false")}

    def fetch() -> dict[str, Any]:
        allowed = docs
        if db == "submissions":
            stored = ctx.submissions.lookup([str(d["id"]) for d in docs])
            allowed = [d for d in docs if (s := stored.get(str(d["id"]))) and _visible(account, db, s)]
        data: dict[str, Any] = {"results": []}
        if allowed:
            r = ctx.couch.request(
                "POST",
                f"{quote(name, safe='')}/_bulk_get",
                params=q,
                json={"docs": allowed},
                action="read documents",
            )
            data = dict(r.json())
        ok_ids = {str(d["id"]) for d in allowed}
        for d in docs:  # anything else answers as a missing document: never its content or existence
            if str(d["id"]) not in ok_ids:
                data.setdefault("results", []).append(
                    {
                        "id": d["id"],
                        "docs": [
                            {
                                "error": {
                                    "id": d["id"],
                                    "rev": d.get("rev", "undefined"),
                                    "error": "not_found",
                                    "reason": "missing",
                                }
                            }
                        ],
                    }
                )
        for result in data.get("results", []):
            for item in result.get("docs", []):
                doc = item.get("ok")
                if doc is not None and not _visible(account, db, doc):
                    item.pop("ok")
                    item["error"] = {
                        "id": result.get("id"),
                        "rev": doc.get("_rev"),
                        "error": "not_found",
                        "reason": "missing",
                    }
        return data

    return JSONResponse(await run_in_threadpool(fetch))


_GET_PARAMS = {
    "rev",
    "revs",
    "revs_info",
    "open_revs",
    "latest",
    "attachments",
    "att_encoding_info",
    "atts_since",
    "conflicts",
    "local_seq",
}


@router.get("/sync/{db}/{docid:path}")
@couch_json
async def get_doc(db: str, docid: str, request: Request) -> Response:
    ctx, account, name = await _setup(request, db)
    if docid.startswith("_"):
        raise Refused(404, "not_found", "Not served here.")
    q = {k: v for k, v in request.query_params.items() if k in _GET_PARAMS}
    for k in ("open_revs", "atts_since"):
        if k in q and q[k] != "all":
            try:
                revs = json.loads(q[k])
            except ValueError:
                raise _bad(f"{k} must be all or a JSON list of revisions.") from None
            if not isinstance(revs, list) or not all(isinstance(r, str) for r in revs):
                raise _bad(f"{k} must be all or a JSON list of revisions.")
    r = await run_in_threadpool(
        lambda: ctx.couch.request(
            "GET",
            f"{quote(name, safe='')}/{quote(docid, safe='')}",
            params=q,
            ok=(200, 400, 404),
            headers={"Accept": "application/json"},
            action="read a document",
        )
    )
    if r.status_code == 400:
        raise _bad("The store could not read that request.")
    if r.status_code == 404:
        raise Refused(404, "not_found", "missing")
    data = r.json()
    docs = [d.get("ok") for d in data if isinstance(d, dict)] if isinstance(data, list) else [data]
    if any(d is not None and not _visible(account, db, d) for d in docs):
        raise Refused(404, "not_found", "missing")  # not the reader's: do not reveal it exists
    return Response(json.dumps(data), media_type="application/json")
