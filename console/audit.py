"""The console's entries in the append-only audit log (contracts §9), and the Audit page's filtered read.

Written through ``core.audit`` (the sync server's security events: refused writes, lockouts) into the same
append-only database (``<accounts_db>_audit``), so the Audit page shows both. Console kinds below; every
event also carries ``area`` (the actor's area, so a district admin's reading can be scoped) when there is one.
No answers, names or passwords: account names, record ids (opaque uuids / pseudonymous ids), reason codes, the
client address.
"""

from __future__ import annotations

from core import audit as core_audit
from core.couch import Couch, Doc
from core.errors import Problem
from core.settings import Settings

SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
IDENTIFIABLE_VIEW = "identifiable_view"  # an officer revealed names / personal ids of a record
EXPORT = "export"  # the audit log (or another table) downloaded
ACCOUNT_CREATED = "account_created"
ACCOUNT_PASSWORD_RESET = "account_password_reset"
ACCOUNT_DISABLED = "account_disabled"
ACCOUNT_ENABLED = "account_enabled"
QUARANTINE_RETRY = "quarantine_retry"
EDIT_CHOICE = "edit_choice"  # an officer chose which of two competing edits counts
DUPLICATE_DECISION = "duplicate_decision"  # registry duplicate: same child / different children
# Written by the sync server (core/audit.py); listed so the page can filter on them.
SERVER_KINDS = (
    core_audit.WRITE_REFUSED,
    core_audit.ACCOUNT_LOCKED,
    core_audit.ADDRESS_THROTTLED,
    core_audit.ACCOUNT_UNLOCKED,
)
KINDS = (
    SIGN_IN,
    SIGN_IN_FAILED,
    SIGN_OUT,
    IDENTIFIABLE_VIEW,
    EXPORT,
    ACCOUNT_CREATED,
    ACCOUNT_PASSWORD_RESET,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    QUARANTINE_RETRY,
    EDIT_CHOICE,
    DUPLICATE_DECISION,
    *SERVER_KINDS,
)

FIELDS = ("at", "kind", "actor", "role", "area", "route", "doc_id", "reason", "client", "detail", "node")
audit_db = core_audit.audit_db


def record(
    couch: Couch,
    settings: Settings,
    kind: str,
    *,
    actor: str | None,
    role: str | None = None,
    area: str | None = None,
    route: str | None = None,
    doc_id: str | None = None,
    reason: str | None = None,
    client: str | None = None,
    detail: str | None = None,
) -> Doc:
    """Append one event; a store outage is a warning line (the action itself already happened or not)."""
    doc = core_audit.event(
        kind,
        node=settings.node_name,
        actor=actor,
        role=role,
        route=route,
        doc_id=doc_id,
        reason=reason,
        client=client,
        detail=detail,
    )
    doc["area"] = area
    core_audit.record(couch, settings, [doc])
    return doc


def search(
    couch: Couch,
    settings: Settings,
    *,
    kind: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    areas: set[str] | None = None,
    limit: int = 200,
) -> list[Doc]:
    """Events newest first, filtered (``since``/``until`` are dates YYYY-MM-DD, inclusive; ``areas`` None =
    all). Reads the id range of the dates, then filters; stops after ``limit`` matches."""
    start = "ev:\ufff0" if not until else f"ev:{until.replace('-', '')}T\ufff0"
    end = "ev:" if not since else f"ev:{since.replace('-', '')}T"
    out: list[Doc] = []
    skip = 0
    while len(out) < limit:
        try:
            rows = couch.all_docs(
                audit_db(settings),
                include_docs=True,
                descending=True,
                startkey=start,
                endkey=end,
                limit=500,
                skip=skip,
            )["rows"]
        except Problem:
            return out
        for r in rows:
            d = r.get("doc") or {}
            if kind and d.get("kind") != kind:
                continue
            if actor and d.get("actor") != actor:
                continue
            if areas is not None and d.get("area") not in areas:
                continue
            out.append({k: d.get(k) for k in FIELDS})
            if len(out) >= limit:
                break
        if len(rows) < 500:
            break
        skip += 500
    return out
