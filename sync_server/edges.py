"""Edge credentials at the province: enrol, revoke, list — and what an enrolled edge may pull and push.

An edge node is a device with more storage, not an administrator (docs/design.md §2). The province enrols it
(``carecheck edge enroll --area CODE``): an account ``edge-<area>-<6 hex>`` with role ``edge`` in the
accounts database, holding only an argon2 hash of a random secret shown once (``<edge id>:<secret>``, pasted
into ``carecheck edge init --enroll-secret`` on the edge). No province CouchDB secret ever leaves the
province: the edge replicates through the province's sync server under ``/sync/edge/…``
(``routes/edge_sync.py``), Basic auth with that credential.

What an edge may do, and nothing else:

- **push** records it accepted into ``submissions`` (any household area: a family that moved, a visiting
  team), through the one write rule (``writerule``). The edge vouches for the author: a pushed record's
  ``submitted_by`` must be a *collaborator account of the edge's area* held at the province (active or
  disabled since: a record taken before a disable still arrives), and its ``area`` inside the edge's area.
  That is exactly what an edge's own sync server can accept (it authenticates only the accounts it pulled,
  which are its area's collaborators), so every accepted record is deliverable while a stolen edge cannot
  write in another district's collaborators' names. The rule then runs *as that collaborator*: create-only,
  an identical resend acknowledged, edits only of that collaborator's own records. ``received_by`` is set
  from the credential (``edge:<area>``); ``received_at`` is the edge's (when the phone handed it in);
- **pull** the published forms and the collaborator accounts of its area, stripped to what Digest/Basic
  checks need (:data:`DEVICE_ACCOUNT_FIELDS`): never an officer's, never another area's;
- report its status (``PUT /sync/edge/report``) into the province's ``carecheck_edges``.

``carecheck edge revoke`` marks the account revoked; the next request with it is refused at once (edge
accounts are never cached), with a ``403 edge_revoked`` that ``carecheck edge status`` shows on the edge.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher

from core import audit, orgunits
from core.couch import Couch, Doc, DocExists
from core.errors import BadRequest, NotFound
from core.settings import Settings
from edge.replication import check_area
from sync_server.auth import EDGE_ROLE, Account

__all__ = ["EDGE_ROLE", "Enrolment", "enroll", "list_edges", "revoke"]
# An account as an edge holds it: what Basic (argon2) and Digest (HA1) checks and the role/area scoping need.
DEVICE_ACCOUNT_FIELDS = ("_id", "_rev", "_revisions", "_deleted", "type", "name", "role", "area", "active",
                         "password_argon2", "digest_ha1")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Enrolment:
    """A new edge credential. ``token`` (``<edge id>:<secret>``) is shown once and stored only hashed."""

    edge_id: str
    area: str
    node_name: str
    token: str


def node_name(area: str) -> str:
    return f"edge:{area}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def enroll(couch: Couch, settings: Settings, area: str) -> Enrolment:
    """Create an edge credential for ``area`` at the province. Several edges may serve one area."""
    area = check_area(area)  # the edge's own rule: a legacy district or commune, never 91
    couch.ensure_db(settings.accounts_db)
    for _ in range(5):
        edge_id = f"edge-{area}-{secrets.token_hex(3)}"
        secret = secrets.token_urlsafe(24)
        doc = {"_id": f"user:{edge_id}", "type": "user", "name": edge_id, "role": EDGE_ROLE, "area": area,
               "node_name": node_name(area), "password_argon2": _hasher.hash(secret), "active": True,
               "created_at": _now(), "revoked_at": None}
        try:
            couch.create(settings.accounts_db, doc)
        except DocExists:
            continue
        audit.record(couch, settings, [audit.event(audit.EDGE_ENROLLED, node=settings.node_name,
                                                   actor=edge_id, role=EDGE_ROLE, detail=area)])
        return Enrolment(edge_id, area, node_name(area), f"{edge_id}:{secret}")
    raise BadRequest("Không tạo được mã nút biên; hãy thử lại.", "Could not create an edge id; try again.")


def list_edges(couch: Couch, settings: Settings) -> list[dict[str, Any]]:
    """Every enrolled edge (revoked ones too): id, area, active, created/revoked times. No hashes."""
    couch.ensure_db(settings.accounts_db)
    rows = couch.all_docs(settings.accounts_db, include_docs=True, startkey="user:edge-",
                          endkey="user:edge-\ufff0")["rows"]
    return [{k: r["doc"].get(k) for k in ("name", "area", "node_name", "active", "created_at", "revoked_at")}
            for r in rows if (r.get("doc") or {}).get("role") == EDGE_ROLE]


def revoke(couch: Couch, settings: Settings, *, area: str | None = None, edge_id: str | None = None
           ) -> list[str]:
    """Revoke the edge ``edge_id``, or every active edge of ``area``; the names revoked."""
    if bool(area) == bool(edge_id):
        raise BadRequest("Chọn đúng một trong --area hoặc --id.", "Give exactly one of --area or --id.")
    targets = [e for e in list_edges(couch, settings)
               if e["active"] and (e["name"] == edge_id if edge_id else e["area"] == (area or "").strip())]
    if not targets:
        which = edge_id or f"vùng {area}"
        raise NotFound(f"Không có nút biên đang hoạt động: {which}.",
                       f"No active edge: {edge_id or f'area {area}'}.")
    done = []
    for e in targets:
        for _ in range(5):
            doc = couch.get(settings.accounts_db, f"user:{e['name']}")
            if doc is None:
                break
            doc.update(active=False, revoked_at=_now())
            try:
                couch.save(settings.accounts_db, doc)
            except DocExists:
                continue
            done.append(str(e["name"]))
            break
    areas = {str(e["name"]): str(e["area"]) for e in targets}
    audit.record(couch, settings, [audit.event(audit.EDGE_REVOKED, node=settings.node_name, actor=name,
                                               role=EDGE_ROLE, detail=areas[name]) for name in done])
    return done


# --- what an enrolled edge may read and write ------------------------------------------------------------


def edge_areas(edge: Account) -> list[str]:
    """The account areas an edge serves: its own and, for a district edge, the district's communes."""
    return orgunits.area_codes(edge.area)


def account_visible(edge: Account, doc: Doc) -> bool:
    """An edge reads the collaborator accounts of its area, nothing else (no officer, no edge, no design)."""
    return (doc.get("type") == "user" and doc.get("role") == "collaborator"
            and str(doc.get("area")) in edge_areas(edge))


def device_account(doc: Doc) -> Doc:
    """The account as an edge receives it: only the fields authentication and scoping need."""
    return {k: doc[k] for k in DEVICE_ACCOUNT_FIELDS if k in doc}


def vouched_author(edge: Account, raw: Any, accounts: dict[str, Doc | None]) -> Account | str:
    """The collaborator on whose behalf ``edge`` pushes ``raw``, or why the edge may not push it.

    ``accounts`` maps account names to the province's account docs (None when unknown).
    """
    if not isinstance(raw, dict):
        return "each entry of docs must be a JSON object."
    name, area = raw.get("submitted_by"), raw.get("area")
    doc = accounts.get(str(name)) if isinstance(name, str) else None
    if doc is None or doc.get("role") != "collaborator" or str(doc.get("area")) not in edge_areas(edge):
        return (f"submitted_by must be a collaborator account of this edge's area {edge.area} "
                "held at the province.")
    if not isinstance(area, str) or area not in edge_areas(edge):
        return f"area must be inside this edge's area {edge.area}."
    return Account(str(name), "collaborator", area)


def accounts_named(couch: Couch, settings: Settings, docs: list[Any]) -> dict[str, Doc | None]:
    """The province's account docs of every ``submitted_by`` named in ``docs`` (one read)."""
    names = sorted({str(d["submitted_by"]) for d in docs if isinstance(d, dict)
                    and isinstance(d.get("submitted_by"), str)})
    if not names:
        return {}
    rows = couch.request("POST", f"{settings.accounts_db}/_all_docs", params={"include_docs": "true"},
                         json={"keys": [f"user:{n}" for n in names]}, action="look up accounts").json()
    out: dict[str, Doc | None] = {n: None for n in names}
    for row in rows.get("rows", []):
        doc = row.get("doc")
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            out[doc["name"]] = doc
    return out
