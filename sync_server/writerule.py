"""THE write rule of the submissions store: who may create which record, which record an edit may supersede.

Every path into the ``submissions`` database goes through here: the OpenRosa POST (``routes/submission.py``),
``/sync`` pushes from PouchDB devices (``routes/replication.py``, including ``new_edits:false`` with any
``_rev``), and enrolled edge nodes' pushes (``routes/edge_sync.py``, :func:`stamp_edge_pushed`).

The rule (README "Who may write"):

1. Only accounts whose role submits (:data:`SUBMITTING_ROLES`) create records. Officers read; they never
   submit.
2. A device creates new records only. An existing id is never overwritten, whatever ``_rev``,
   ``_revisions`` or ``new_edits`` it sends: an identical resend (same ``xml_sha256``) is acknowledged and
   changes nothing, except that its author's resend may add attachments the stored record lacks (a split
   OpenRosa upload's later part, an edge's later revision of such a record: :func:`may_complete`);
   different content under an existing (or deleted) id is refused for that document and recorded in the
   audit log.
3. ``submitted_by``, ``area``, ``received_by``, ``received_at``, ``org_unit``, ``form_id``/``form_version``,
   ``deprecated_id`` and ``xml_sha256`` are the server's: taken from the account and the XML, never from the
   body. A pushed doc that *claims* another author or area is refused (a forgery, recorded).
4. An edit (``deprecatedID``) may supersede only a record its author may edit: a collaborator edits only
   records it submitted itself (:func:`may_edit`). Only such a record's attachments are carried forward.
5. An instanceID is refused at intake unless it matches :data:`INSTANCE_ID` (``uuid:…`` and other ids of
   letters, digits and ``:._-``), so every id stored is readable through every route (no ``/``, ``?``, ``#``,
   ``%``, spaces or a leading ``_``).

6. An enrolled edge node (role ``edge``, ``sync_server.edges``; not in :data:`SUBMITTING_ROLES`: it never
   submits through OpenRosa) pushes the records its own sync server accepted, on behalf of their
   collaborators, through ``routes.replication.push``: the edge vouches for the author
   (``edges.vouched_author``: a collaborator account of the edge's area, held at the province, and an area
   inside the edge's), and the rule above then runs *as that collaborator* (:func:`stamp_edge_pushed`;
   create-only, an identical resend a no-op, edits of that collaborator's own records only).
   ``received_by`` is set to the edge's node name from its credential (whatever the body says);
   ``received_at`` is the edge's own when well formed (field lag stays the field lag).

7. A record is taken only for a form and version the receiving server has (``deps.FormCache.require``,
   the same rule and message on the OpenRosa POST and on a device's ``/sync`` push: 404 ``form_unknown``). An
   edge's push is not judged again at the province: the edge's own server applied the rule when the phone
   handed the record in, and a version the province no longer lists must not strand a record at the edge
   (ingestion reads any version).

CouchDB's ``validate_doc_update`` (``core.stores.VALIDATE_DOC_UPDATE``) is the second line inside the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from core.couch import Couch, Doc
from core.errors import BadRequest, Problem
from core.settings import Settings
from sync_server import edges, openrosa
from sync_server.auth import Account

log = logging.getLogger("carecheck.sync.writerule")

SUBMITTING_ROLES = ("collaborator",)  # the edge role joins here with its own stamping rule
INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,199}$")
# Fields a pushed document may carry; anything else is dropped (the server's copy has the contract's fields).
_PUSH_FIELDS = ("_id", "_rev", "_revisions", "_attachments", "xml", "device_id", "attachments_expected")

# Reason codes: stable, recorded in the audit log and shown to devices.
OVERWRITE = "overwrite"  # an existing (or deleted) id with other content
FORGED = "forged_owner"  # submitted_by / area of someone else
FOREIGN_EDIT = "foreign_edit"  # deprecatedID names a record the author may not edit
EDIT_MISSING = "edit_missing"  # deprecatedID names no stored record
NOT_SUBMITTER = "not_submitter"  # the account's role does not submit
BAD_DOC = "bad_doc"  # not a well-formed submission
FORM_UNKNOWN = "form_unknown"  # a form or version this server does not have (rule 7)
MISSING_STUB = "missing_stub"  # a new record names an attachment by reference (stub) instead of sending it


# The problem code (core.errors.CODES) each refusal is answered with.
_CODES = {
    OVERWRITE: "submission_conflict",
    FORGED: "forged_owner",
    FOREIGN_EDIT: "foreign_edit",
    EDIT_MISSING: "edit_target_unknown",
    NOT_SUBMITTER: "not_submitter",
    BAD_DOC: "bad_request",
    FORM_UNKNOWN: "form_unknown",
    MISSING_STUB: "bad_request",
}


class Refusal(Problem):
    """A write the rule refuses; ``reason`` is a code from this module."""

    status = 403
    title = "Forbidden"

    def __init__(self, reason: str, message: str, message_en: str, status: int = 403, doc_id: str = ""):
        super().__init__(message, message_en, code=_CODES.get(reason, "forbidden"))
        self.reason = reason
        self.status = status
        self.doc_id = doc_id  # the record whose write was refused (for the audit log)


def check_instance_id(instance_id: str) -> None:
    """400 unless the id is one every route can read back (see :data:`INSTANCE_ID`)."""
    if not INSTANCE_ID.match(instance_id or ""):
        raise BadRequest(
            f"meta/instanceID không hợp lệ: {instance_id[:60]!r}. Mã phiếu chỉ gồm chữ, số và ':._-' "
            "(thường là uuid:…), tối đa 200 ký tự.",
            f"meta/instanceID {instance_id[:60]!r} is not accepted: record ids are letters, digits and "
            "':._-' (usually uuid:…), at most 200 characters.",
            code="instance_id_invalid",
        )


def may_submit(account: Account) -> None:
    """Raise unless the account's role creates records."""
    if account.role not in SUBMITTING_ROLES:
        raise Refusal(
            NOT_SUBMITTER,
            f"Tài khoản {account.name} (vai trò {account.role}) không gửi phiếu; "
            "chỉ cộng tác viên gửi phiếu.",
            f"Account {account.name} (role {account.role}) does not submit records; collaborators do.",
        )


def may_edit(account: Account, old: Doc) -> bool:
    """Whether ``account`` may supersede ``old`` with an edit: a collaborator, only records it submitted."""
    if account.role == "collaborator":
        return old.get("submitted_by") == account.name
    return False


def check_edit(account: Account, deprecated_id: str, old: Doc | None) -> Doc:
    """The record an edit supersedes, when it exists and the account may edit it; raise otherwise."""
    if old is None:
        raise Refusal(
            EDIT_MISSING,
            f"Không tìm thấy phiếu gốc {deprecated_id} mà bản sửa này thay thế. "
            "Hãy gửi phiếu gốc trước, hoặc liên hệ cán bộ huyện.",
            f"The record this edit replaces ({deprecated_id}) is not on this server. "
            "Send the original first, or contact your district officer.",
            status=404,
        )
    if not may_edit(account, old):
        raise Refusal(
            FOREIGN_EDIT,
            f"Bạn chỉ được sửa phiếu do chính mình gửi; phiếu {deprecated_id} không phải của bạn.",
            f"You may edit only records you sent yourself; {deprecated_id} is not yours.",
        )
    return old


def same_content(existing: Doc, incoming_sha256: str) -> bool:
    """An identical resend: the stored record has the same XML (by hash). Anything else is an overwrite."""
    return not existing.get("_deleted") and existing.get("xml_sha256") == incoming_sha256


def may_complete(existing: Doc, incoming: Doc) -> bool:
    """Whether an identical resend may add the attachments the stored record lacks (a split upload's later
    part, an edge's later revision): same content and the same author. Nothing stored is ever replaced."""
    return same_content(existing, str(incoming.get("xml_sha256"))) and (
        existing.get("submitted_by") == incoming.get("submitted_by")
    )


def overwrite_refusal(doc_id: str) -> Refusal:
    return Refusal(
        OVERWRITE,
        f"Phiếu {doc_id} đã được nhận trước đó với nội dung khác; máy chủ giữ bản đầu tiên. "
        "Nếu cần sửa, hãy sửa phiếu đã gửi trên máy rồi gửi lại.",
        f"Record {doc_id} was already received with different content; the first one is kept. "
        "To change it, edit the sent record on the phone and send again.",
        status=409,
    )


def stamp(account: Account, node_name: str, received_at: str) -> Doc:
    """The fields the server sets from the account and itself (never from the body)."""
    return {
        "submitted_by": account.name,
        "area": account.area,
        "received_by": node_name,
        "received_at": received_at,
    }


# --- /sync pushes (and the edge uplink) ---------------------------------------------------------------------


@dataclass
class Pushed:
    """One pushed document after the rule: the doc to store, or the refusal."""

    doc_id: str
    doc: Doc | None = None
    refusal: Refusal | None = None
    duplicate: bool = False
    deprecated_id: str | None = None
    attachments: list[str] = field(default_factory=list)  # sent inline
    stubs: list[str] = field(default_factory=list)  # named by reference: ones the stored record already holds
    author: Account | None = None  # whose edit rights apply (an edge's push: the vouched collaborator)


def form_unknown(doc_id: str, problem: Problem) -> Refusal:
    """Rule 7 for one pushed document: the form rule's 404, as that document's refusal."""
    return Refusal(FORM_UNKNOWN, problem.message, problem.message_en, status=404, doc_id=doc_id)


def bad_doc(doc_id: str, why: str) -> Refusal:
    """A pushed document that is not a well-formed submission (400 per document)."""
    return _bad(doc_id, why)


def _bad(doc_id: str, why: str) -> Refusal:
    return Refusal(
        BAD_DOC, f"Tài liệu {doc_id[:60]} không hợp lệ: {why}", f"Document {doc_id[:60]}: {why}", status=400
    )


_REV = re.compile(r"^([1-9][0-9]{0,8})-([A-Za-z0-9]{1,64})$")


def _revision_problem(raw: Doc) -> str | None:
    """Why a pushed ``_rev``/``_revisions`` is malformed (CouchDB would fail the whole request), or None."""
    rev = raw.get("_rev")
    if rev is None:
        return None if "_revisions" not in raw else "_revisions without _rev."
    m = _REV.match(rev) if isinstance(rev, str) else None
    if m is None:
        return "_rev must look like N-<hash>."
    revs = raw.get("_revisions")
    if revs is None:
        return None
    ids = revs.get("ids") if isinstance(revs, dict) else None
    if (
        not isinstance(ids, list)
        or not 0 < len(ids) <= 1000
        or not all(isinstance(i, str) and re.fullmatch(r"[A-Za-z0-9]{1,64}", i) for i in ids)
        or revs.get("start") != int(m.group(1))
        or ids[0] != m.group(2)
    ):
        return "_revisions must be {start: N, ids: [<hash of _rev>, ...]} matching _rev."
    return None


def stamp_pushed(account: Account, raw: Any, node_name: str, received_at: str) -> Pushed:
    """Check one pushed document and build the server's copy (no store access; see :func:`decide_batch`).

    The device's XML, id, revision, attachments and device id are kept; every other field is the server's.
    A body naming another author or area is refused (forged), not silently corrected.
    """
    if not isinstance(raw, dict):
        return Pushed("", refusal=_bad("?", "each entry of docs must be a JSON object."))
    doc_id = raw.get("_id")
    if not isinstance(doc_id, str) or not INSTANCE_ID.match(doc_id):
        return Pushed(
            str(doc_id)[:60],
            refusal=_bad(
                str(doc_id), "_id must be the record's instanceID (letters, digits and ':._-', e.g. uuid:…)."
            ),
        )
    if raw.get("_deleted"):
        return Pushed(
            doc_id,
            refusal=Refusal(
                OVERWRITE, "Không được xoá phiếu.", "Submissions are append-only; deletions are refused."
            ),
        )
    for key, mine in (("submitted_by", account.name), ("area", account.area)):
        if raw.get(key) not in (None, mine):
            return Pushed(
                doc_id,
                refusal=Refusal(
                    FORGED,
                    f"{key} phải là {mine} (tài khoản của bạn).",
                    f"{key} must be {mine} (your account); the server sets it.",
                ),
            )
    if raw.get("type") not in (None, "submission"):
        return Pushed(doc_id, refusal=_bad(doc_id, "type must be 'submission'."))
    why = _revision_problem(raw)
    if why:
        return Pushed(doc_id, refusal=_bad(doc_id, why))
    xml = raw.get("xml")
    if not isinstance(xml, str) or not xml:
        return Pushed(doc_id, refusal=_bad(doc_id, "xml (the instance) is missing."))
    try:
        inst = openrosa.parse_instance(xml.encode("utf-8"))
    except Problem as exc:
        return Pushed(doc_id, refusal=_bad(doc_id, exc.message_en))
    if inst.instance_id != doc_id:
        return Pushed(doc_id, refusal=_bad(doc_id, "_id differs from the XML's meta/instanceID."))
    dep = inst.deprecated_id if inst.deprecated_id and inst.deprecated_id != inst.instance_id else None
    if (raw.get("deprecated_id") or None) != dep:
        return Pushed(doc_id, refusal=_bad(doc_id, "deprecated_id differs from the XML's meta/deprecatedID."))
    atts = raw.get("_attachments") or {}
    if not isinstance(atts, dict):
        return Pushed(doc_id, refusal=_bad(doc_id, "_attachments must be an object."))
    for name, att in atts.items():
        if not openrosa.safe_attachment_name(str(name)) or not isinstance(att, dict):
            return Pushed(doc_id, refusal=_bad(doc_id, f"attachment name {str(name)[:60]!r} is not allowed."))
        if att.get("stub") is True and "data" not in att:
            continue  # CouchDB's replicator names what the target holds (atts_since); see decide_batch
        if att.get("follows") or not isinstance(att.get("data"), str):
            return Pushed(
                doc_id, refusal=_bad(doc_id, f"attachment {name} must be sent inline (base64 data).")
            )
        try:
            base64.b64decode(att["data"], validate=True)
        except (binascii.Error, ValueError):
            return Pushed(doc_id, refusal=_bad(doc_id, f"attachment {name} is not valid base64."))
    expected = raw.get("attachments_expected") or []
    if not isinstance(expected, list) or not all(isinstance(x, str) for x in expected):
        return Pushed(doc_id, refusal=_bad(doc_id, "attachments_expected must be a list of names."))
    device = raw.get("device_id")
    doc: Doc = {k: raw[k] for k in _PUSH_FIELDS if k in raw}
    doc.update(
        {
            "type": "submission",
            "form_id": inst.form_id,
            "form_version": inst.version or raw.get("form_version"),
            "xml_sha256": hashlib.sha256(xml.encode("utf-8")).hexdigest(),
            "deprecated_id": dep,
            "device_id": str(device)[:200] if device else None,
            "org_unit": org_unit(inst.root),
            "attachments_expected": expected,
            **stamp(account, node_name, received_at),
        }
    )
    stubs = sorted(str(n) for n, a in atts.items() if a.get("stub") is True and "data" not in a)
    inline = sorted(str(n) for n in atts if n not in stubs)
    return Pushed(doc_id, doc=doc, deprecated_id=dep, attachments=inline, stubs=stubs, author=account)


_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def stamp_edge_pushed(edge: Account, raw: Any, authors: dict[str, Doc | None], received_at: str) -> Pushed:
    """Rule 6: one record an edge pushes; ``authors`` maps the named submitters to their account docs.

    The edge's ``received_at`` (when the phone handed the record in) is kept when well formed, so lag stays
    the field lag; ``received_by`` is the edge's node name, whatever the body says.
    """
    author = edges.vouched_author(edge, raw, authors)
    doc_id = str(raw.get("_id"))[:200] if isinstance(raw, dict) else ""
    if isinstance(author, str):
        return Pushed(
            doc_id,
            refusal=Refusal(
                FORGED,
                f"Nút biên {edge.name} không được gửi phiếu này: {author}",
                f"Edge {edge.name} may not push this record: {author}",
            ),
        )
    theirs = raw.get("received_at")
    when = theirs if isinstance(theirs, str) and _ISO_UTC.match(theirs) else received_at
    return stamp_pushed(author, raw, edges.node_name(edge.area), when)


def decide_batch(account: Account, pushed: list[Pushed], stored: dict[str, Doc | None]) -> list[Pushed]:
    """Apply the store-dependent part of the rule to a batch whose ids (and edits' targets) were looked up.

    ``stored`` maps every pushed id and every deprecatedID named to the stored doc (``{"_deleted": True}``
    for a deleted one) or None. A record created earlier in the same batch counts as stored for an edit
    after it (PouchDB pushes an original and its edit together).
    """
    created: dict[str, Doc] = {}
    seen: set[str] = set()
    for p in pushed:
        if p.refusal or p.doc is None:
            continue
        if p.doc_id in seen:
            p.refusal = _bad(p.doc_id, "the same _id appears twice in one request.")
            continue
        seen.add(p.doc_id)
        existing = stored.get(p.doc_id)
        if existing is not None:
            if same_content(existing, str(p.doc["xml_sha256"])):
                p.duplicate = True  # its stubs name what it holds; inline attachments may be added
            else:
                p.refusal = overwrite_refusal(p.doc_id)
            continue
        if p.stubs:  # a new record brings its attachments (CouchDB: 412 missing_stub; see edge_sync)
            p.refusal = Refusal(
                MISSING_STUB,
                f"Phiếu mới phải gửi kèm tệp {p.stubs[0]} (không chỉ tên).",
                f"attachment {p.stubs[0]} must be sent inline (base64 data): the record is new here.",
                status=412,
                doc_id=p.doc_id,
            )
            continue
        if p.deprecated_id:
            target = created.get(p.deprecated_id) or stored.get(p.deprecated_id)
            if target is not None and target.get("_deleted"):
                target = None
            try:
                check_edit(p.author or account, p.deprecated_id, target)
            except Refusal as exc:
                p.refusal = exc
                continue
        created[p.doc_id] = p.doc
    return pushed


def org_unit(root: Any) -> list[str] | None:
    """[province, district, commune] from the answers, when the commune is a valid code (contracts §1)."""
    from core import orgunits

    commune = openrosa.first_answer(root, "commune")
    district = openrosa.first_answer(root, "district")
    c = orgunits.communes().get(commune or "")
    if c is None or (district and district != c.district_code):
        return None
    return orgunits.area_path(c.code)


def record_refusals(
    couch: Couch,
    settings: Settings,
    account: Account,
    route: str,
    refusals: list[tuple[str, Refusal]],
    client: str | None = None,
) -> None:
    """Log and append refused writes to the audit log (ids and reason codes only, never answers)."""
    from core import audit

    for doc_id, r in refusals:
        log.warning("write refused: %s by %s on %s: %s", doc_id[:60], account.name, route, r.reason)
    audit.record(
        couch,
        settings,
        [
            audit.event(
                audit.WRITE_REFUSED,
                node=settings.node_name,
                actor=account.name,
                role=account.role,
                route=route,
                doc_id=doc_id[:200] or None,
                reason=r.reason,
                client=client,
            )
            for doc_id, r in refusals
        ],
    )
