"""The append-only security record: refused writes, lockouts, unlocks (contracts §10).

One CouchDB document per event in ``<accounts_db>_audit`` (admin-only, like every carecheck database), never
updated or deleted (a ``validate_doc_update`` refuses both, for the admin too). Ids sort by time, so the
newest are an ``_all_docs`` read with ``descending=true``. ``carecheck status`` shows counts and the latest;
the web console's audit log reads the same documents. No personal data: account names, record ids (opaque
uuids), reason codes and the client address; never answers, names or passwords.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from core.couch import Couch, Doc
from core.errors import Problem
from core.settings import Settings

log = logging.getLogger("carecheck.audit")

# Kinds (stable; the console filters on them).
WRITE_REFUSED = "write_refused"  # reason: a writerule code (overwrite, forged_owner, foreign_edit, ...)
ACCOUNT_LOCKED = "account_locked"  # too many failed logins for one account
ADDRESS_THROTTLED = "address_throttled"  # too many failed logins from one client address
ACCOUNT_UNLOCKED = "account_unlocked"  # an operator cleared a lockout
EDGE_ENROLLED = "edge_enrolled"  # `carecheck edge enroll`: actor = the new edge id, detail = its area
EDGE_REVOKED = "edge_revoked"  # `carecheck edge revoke`: actor = the edge id, detail = its area

_APPEND_ONLY = (
    "function (newDoc, oldDoc, userCtx) { if (oldDoc || newDoc._deleted) "
    "{ throw({forbidden: 'The audit log is append-only.'}); } "
    "if (newDoc.type !== 'audit' || !newDoc.kind || !newDoc.at) "
    "{ throw({forbidden: 'An audit event needs type, kind and at.'}); } }"
)
DESIGN_DOC: Doc = {"_id": "_design/audit", "language": "javascript", "validate_doc_update": _APPEND_ONLY}


def audit_db(settings: Settings) -> str:
    return f"{settings.accounts_db}_audit"


def ensure_audit(couch: Couch, settings: Settings) -> None:
    couch.ensure_db(audit_db(settings))
    couch.put_design(audit_db(settings), DESIGN_DOC)


def event(
    kind: str,
    *,
    node: str,
    actor: str | None = None,
    role: str | None = None,
    route: str | None = None,
    doc_id: str | None = None,
    reason: str | None = None,
    client: str | None = None,
    detail: str | None = None,
) -> Doc:
    """One audit document (contracts §10); ``_id`` = ``ev:<UTC time>:<random>`` sorts by time."""
    now = datetime.now(UTC)
    return {
        "_id": f"ev:{now.strftime('%Y%m%dT%H%M%S.%f')}:{secrets.token_hex(4)}",
        "type": "audit",
        "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": kind,
        "node": node,
        "actor": actor,
        "role": role,
        "route": route,
        "doc_id": doc_id,
        "reason": reason,
        "client": client,
        "detail": detail,
    }


def record(couch: Couch, settings: Settings, events: list[Doc]) -> None:
    """Append events; never fails the request that caused them (a store outage is a warning line)."""
    if not events:
        return
    for e in events:
        log.info(
            "audit %s actor=%s reason=%s doc=%s", e["kind"], e.get("actor"), e.get("reason"), e.get("doc_id")
        )
    try:
        couch.bulk_docs(audit_db(settings), events)
    except Problem as exc:
        try:
            ensure_audit(couch, settings)
            couch.bulk_docs(audit_db(settings), events)
        except Problem:
            log.warning("audit events not recorded (%d): %s", len(events), exc.message_en)


def latest(couch: Couch, settings: Settings, limit: int = 20) -> list[Doc]:
    """The newest events first."""
    try:
        rows = couch.all_docs(
            audit_db(settings),
            include_docs=True,
            descending=True,
            limit=limit,
            startkey="ev:\ufff0",
            endkey="ev:",
        )["rows"]
    except Problem:
        return []
    return [r["doc"] for r in rows if r.get("doc")]


def summary(couch: Couch, settings: Settings, *, days: int = 7) -> dict[str, Any]:
    """Counts per kind (and per refusal reason) over the last ``days``, and the latest event."""
    since = (datetime.now(UTC) - timedelta(days=days)).strftime("ev:%Y%m%dT%H%M%S")
    try:
        rows = couch.all_docs(audit_db(settings), include_docs=True, startkey=since, endkey="ev:\ufff0")[
            "rows"
        ]
    except Problem:
        return {"days": days, "counts": {}, "latest": None}
    docs = [r["doc"] for r in rows if r.get("doc")]
    counts = Counter(f"{d['kind']}:{d['reason']}" if d.get("reason") else str(d["kind"]) for d in docs)
    return {"days": days, "counts": dict(sorted(counts.items())), "latest": docs[-1] if docs else None}

