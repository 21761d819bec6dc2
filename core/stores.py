"""CouchDB contracts several packages share (contracts §3): database names, the design doc, visibility."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from core import orgunits
from core.couch import Couch, Doc
from core.errors import Problem
from core.settings import Settings

log = logging.getLogger("carecheck.stores")

EDGE_DB = "carecheck_edge"  # on an edge node: its config + status doc
EDGES_DB = "carecheck_edges"  # at the province: one doc per edge node (replicated up)
FORMS_DB = "carecheck_forms"  # published forms (province → every edge)
STALE_REPORT_SECONDS = 3600  # an edge that has not reported for an hour is shown as stale

DDOC = "carecheck"
ACCOUNTS_DDOC = "carecheck_edge"
ACCOUNTS_FILTER = f"{ACCOUNTS_DDOC}/accounts_for_area"  # an edge's accounts: its area's collaborators only

# Reduce for [count, latest value] per key (values are ISO timestamps, which sort as text).
_COUNT_AND_LAST = (
    "function (keys, values, rereduce) { var n = 0, last = ''; "
    "for (var i = 0; i < values.length; i++) { var c = rereduce ? values[i][0] : 1; "
    "var t = rereduce ? values[i][1] : values[i]; n += c; if (t > last) { last = t; } } "
    "return [n, last]; }"
)

# The store's own second line behind sync_server.writerule (contracts §3): a submission is created once and
# never changed afterwards except by adding attachments (split uploads); only an admin deletes. Apache CouchDB
# runs it on every write, replicated ones included, with the new revision's parent as oldDoc (null for an
# unrelated branch: there the sync server's existence check, writerule.decide_batch, stops a forged branch).
# It is installed on Apache CouchDB only (see ensure_store): pouchdb-server 4.2.0 runs it too, but its
# pouchdb-validation plugin first overwrites every written doc's ``_revisions`` with the current winner's
# (checked here), so a replicated branch of an existing record is silently dropped (the edge's copy of a
# record that also reached the province directly never lands, and `edge status` waits on it forever) and a
# replicated doc loses its revision history.
VALIDATE_DOC_UPDATE = (
    "function (newDoc, oldDoc, userCtx) { "
    "var admin = userCtx && userCtx.roles && userCtx.roles.indexOf('_admin') !== -1; "
    "if (newDoc._deleted) { if (admin) { return; } "
    "throw({forbidden: 'Only the province deletes records.'}); } "
    "if (oldDoc && !oldDoc._deleted) { "
    "var keys = ['xml_sha256', 'submitted_by', 'area', 'form_id', 'deprecated_id']; "
    "for (var i = 0; i < keys.length; i++) { "
    "if (String(newDoc[keys[i]]) !== String(oldDoc[keys[i]])) "
    "{ throw({forbidden: 'Submissions are append-only: ' + newDoc._id + "
    "' exists with other ' + keys[i] + '.'}); } "
    "} } }"
)

# Views and the replication filter of contracts §3, in JavaScript: they run on CouchDB and pouchdb-server.
DESIGN_DOC: Doc = {
    "_id": f"_design/{DDOC}",
    "language": "javascript",
    "validate_doc_update": VALIDATE_DOC_UPDATE,
    "views": {
        "by_deprecated": {
            "map": "function (doc) { if (doc.type === 'submission' && doc.deprecated_id) "
            "{ emit(doc.deprecated_id, null); } }"
        },
        "by_form": {
            "map": "function (doc) { if (doc.type === 'submission') "
            "{ emit([doc.form_id, doc.received_at], null); } }"
        },
        "by_device": {
            "map": "function (doc) { if (doc.type === 'submission') { emit(doc.device_id, "
            "[doc.received_at, doc.submitted_by, doc.area]); } }"
        },
        # Per (device, account, area): [count, last received_at], kept up to date incrementally by the store,
        # so the devices report reads one row per phone instead of every submission.
        "device_stats": {
            "map": "function (doc) { if (doc.type === 'submission') { emit([doc.device_id || null, "
            "doc.submitted_by, doc.area], doc.received_at); } }",
            "reduce": _COUNT_AND_LAST,
        },
        # Per receiving node ("province", "edge:<area>"): [count, last received_at], for the edge monitor.
        "received_by_stats": {
            "map": "function (doc) { if (doc.type === 'submission') { emit(doc.received_by || null, "
            "doc.received_at); } }",
            "reduce": _COUNT_AND_LAST,
        },
    },
    "filters": {
        # What an edge replicates up: every record it accepted, whatever its area; never a design doc.
        "records": "function (doc) { return doc._id.indexOf('_design/') !== 0; }",
        "by_area": (
            "function (doc, req) { if (doc._id.indexOf('_design/') === 0) { return false; } "
            # String(): pouchdb-server parses query params as JSON: area=911 comes as a number (contracts §3).
            "if (req.query.area === undefined || req.query.area === null) { return false; } "
            "var a = String(req.query.area); if (String(doc.area) === a) { return true; } "
            "var p = doc.org_unit || []; "
            "for (var i = 0; i < p.length; i++) { if (String(p[i]) === a) { return true; } } "
            "return false; }"
        ),
        # A collaborator's device reads back only what it submitted (query param ``name``).
        "by_submitter": (
            "function (doc, req) { if (doc._id.indexOf('_design/') === 0) { return false; } "
            "return doc.type === 'submission' && req.query.name !== undefined && req.query.name !== null "
            "&& String(doc.submitted_by) === String(req.query.name); }"
        ),
    },
}


# In the accounts database: the collaborator accounts of the areas in ``req.query.areas`` (comma-separated),
# which the province's /sync/edge/accounts serves an enrolled edge (sync_server.edges).
ACCOUNTS_DESIGN_DOC: Doc = {
    "_id": f"_design/{ACCOUNTS_DDOC}",
    "language": "javascript",
    "filters": {
        "accounts_for_area": (
            "function (doc, req) { if (doc._id.indexOf('_design/') === 0) { return false; } "
            "if (doc.type !== 'user' || doc.role !== 'collaborator') { return false; } "
            "var areas = String(req.query.areas).split(','); "
            "return areas.indexOf(String(doc.area)) >= 0; }"
        ),
    },
}


def devices_db(settings: Settings) -> str:
    """Where device contact records live: beside the submissions, never inside them (append-only docs)."""
    return f"{settings.submissions_db}_devices"


def is_pouchdb_server(couch: Couch) -> bool:
    """Whether the store is pouchdb-server (the embedded/test store) rather than Apache CouchDB."""
    info = couch.request("GET", "", action="read the server's welcome").json()
    return "express-pouchdb" in info or "PouchDB" in str((info.get("vendor") or {}).get("name", ""))


def design_doc(couch: Couch) -> Doc:
    """The submissions design doc for this store: with validate_doc_update on Apache CouchDB only."""
    if is_pouchdb_server(couch):
        return {k: v for k, v in DESIGN_DOC.items() if k != "validate_doc_update"}
    return DESIGN_DOC


def ensure_store(couch: Couch, settings: Settings) -> None:
    """Create the databases, the design doc and the Mango index the API pages with. Idempotent.

    ``carecheck_forms`` too: devices and edges replicate it from here before any form is published."""
    for db in (settings.submissions_db, settings.accounts_db, devices_db(settings), FORMS_DB):
        couch.ensure_db(db)
    couch.put_design(settings.submissions_db, design_doc(couch))
    couch.put_design(settings.accounts_db, ACCOUNTS_DESIGN_DOC)
    couch.ensure_index(settings.submissions_db, ["received_at"], "by_received_at")


def doc_visible(area: str, doc: Doc) -> bool:
    """Whether a reader scoped to ``area`` may see the submission (submitter's area or captured org unit)."""
    if area == orgunits.PROVINCE_CODE:
        return True
    return doc.get("area") in orgunits.area_codes(area) or area in (doc.get("org_unit") or [])


def edge_summary(couch: Couch, settings: Settings) -> list[dict[str, Any]]:
    """Province side: one dict per edge node — last report, last success, backlog, lag, records received.

    ``lag_seconds`` is the age of the edge's last confirmed delivery of submissions (None if never);
    ``report_age_seconds`` the age of its last status report; ``stale`` when no report for an hour.
    """
    now = datetime.now(UTC)
    try:
        rows = couch.all_docs(EDGES_DB, include_docs=True, startkey="edge:", endkey="edge:\ufff0")["rows"]
    except Problem as exc:
        if "404" in str(exc):
            return []
        raise
    credentials = _edge_credentials(couch, settings)
    out: list[dict[str, Any]] = []
    for row in rows:
        doc: Doc = row["doc"]
        report = doc.get("report") or {}
        sub = (report.get("replications") or {}).get("submissions_up") or {}
        # one reduced row per node from the store's view, not every submission the edge ever sent
        stats = couch.view(settings.submissions_db, DDOC, "received_by_stats", key=doc.get("node_name"),
                           group=True).get("rows", [])
        received, newest = (stats[0]["value"][0], stats[0]["value"][1] or None) if stats else (0, None)
        out.append({
            "area": doc.get("area"),
            "edge_id": doc.get("edge_id"),
            # the enrolled credential the last report came with: active | revoked | None (pre-enrolment edge)
            "credential": credentials.get(str(doc.get("edge_id"))),
            "node_name": doc.get("node_name"),
            "configured_at": doc.get("configured_at"),
            "report_at": report.get("checked_at"),
            "report_age_seconds": _age(report.get("checked_at"), now),
            "stale": (_age(report.get("checked_at"), now) or 0) > STALE_REPORT_SECONDS,
            "central_reachable": report.get("central_reachable"),
            "state": sub.get("state"),
            "backlog": sub.get("waiting"),
            "last_success": sub.get("last_success"),
            "lag_seconds": _age(sub.get("last_success"), now),
            "last_error": sub.get("last_error"),
            "last_error_at": sub.get("last_error_at"),
            "received_at_province": received,
            "newest_received_at": newest,
        })
    return out


def _edge_credentials(couch: Couch, settings: Settings) -> dict[str, str]:
    """edge id → "active" | "revoked", from the edge accounts (``sync_server.edges``) in the accounts db."""
    try:
        rows = couch.all_docs(settings.accounts_db, include_docs=True, startkey="user:edge-",
                              endkey="user:edge-\ufff0")["rows"]
    except Problem:
        return {}
    return {str(r["doc"].get("name")): "active" if r["doc"].get("active") else "revoked"
            for r in rows if (r.get("doc") or {}).get("role") == "edge"}


def _age(iso: str | None, now: datetime) -> int | None:
    if not iso:
        return None
    try:
        return int((now - datetime.fromisoformat(iso.replace("Z", "+00:00"))).total_seconds())
    except ValueError:
        return None
