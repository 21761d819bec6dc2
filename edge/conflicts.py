"""Records edited in two places: find them, keep every version, name the winner by one documented rule.

Submissions are append-only and keyed by the phone's instanceID, so replication alone never collides. A
conflict arises only when a record is edited in two places:

- **forked edits**: two or more docs carry the same ``deprecated_id`` (the record was edited on a phone that
  sent to the edge and on another that sent to the province). Each branch is represented by its newest version
  (the chain of edits followed down while it does not fork again).
- **CouchDB conflicts**: one ``_id`` with several leaf revisions (``_conflicts``), e.g. the same instanceID
  taken with different XML by two servers before they replicated. The same XML arriving both ways (a phone
  that sent to the edge and later, in town, to the province) also makes two leaf revisions, but it is one
  record: not listed.

**Winner rule**: the latest form ``end`` time (the moment the collaborator finished the edit, in UTC); ties
broken by the latest ``received_at``; then by the greatest instanceID (or revision). Nothing is deleted:
losers stay stored and listed, and the operator can see every version with ``carecheck conflicts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from core.couch import Couch, Doc
from core.localtime import shown
from core.settings import Settings
from core.xmlsafe import hardened_parser

_PARSER = hardened_parser()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Version:
    id: str
    rev: str
    end: str | None
    received_at: str | None
    received_by: str | None
    submitted_by: str | None

    def key(self) -> tuple[datetime, str, str, str]:
        return (parse_time(self.end), self.received_at or "", self.id, self.rev)


@dataclass
class ConflictGroup:
    kind: str                         # forked_edit | couch_conflict
    record: str                       # the deprecated_id edited twice, or the doc id with _conflicts
    versions: list[Version] = field(default_factory=list)

    @property
    def winner(self) -> Version:
        return max(self.versions, key=Version.key)

    def as_dict(self) -> dict[str, Any]:
        w = self.winner
        return {"kind": self.kind, "record": self.record, "winner": {"id": w.id, "rev": w.rev},
                "versions": [vars(v) for v in sorted(self.versions, key=Version.key, reverse=True)]}


def parse_time(value: str | None) -> datetime:
    if not value:
        return _EPOCH
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def form_end(xml: str | None) -> str | None:
    """The form's ``end`` metadata (ODK ``end`` question), read from the instance XML."""
    if not xml:
        return None
    try:
        root = etree.fromstring(xml.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError:
        return None
    for el in root.iter():
        if isinstance(el.tag, str) and etree.QName(el).localname == "end" and el.text:
            return str(el.text).strip()
    return None


def _version(doc: Doc) -> Version:
    return Version(id=str(doc["_id"]), rev=str(doc.get("_rev", "")), end=form_end(doc.get("xml")),
                   received_at=doc.get("received_at"), received_by=doc.get("received_by"),
                   submitted_by=doc.get("submitted_by"))


def _all_submissions(couch: Couch, db: str) -> list[Doc]:
    docs: list[Doc] = []
    startkey: str | None = None
    while True:
        params: dict[str, Any] = {"include_docs": True, "conflicts": True, "limit": 1000}
        if startkey is not None:
            params["startkey"] = startkey
            params["skip"] = 1
        rows = couch.all_docs(db, **params).get("rows", [])
        for r in rows:
            d = r.get("doc")
            if d and not str(d["_id"]).startswith("_design/"):
                docs.append(d)
        if len(rows) < 1000:
            return docs
        startkey = rows[-1]["id"]


def find_conflicts(couch: Couch, settings: Settings) -> list[ConflictGroup]:
    """Every forked edit and every CouchDB conflict in the submissions database, winners by the rule."""
    db = settings.submissions_db
    docs = _all_submissions(couch, db)
    by_id = {str(d["_id"]): d for d in docs}
    children: dict[str, list[str]] = {}
    for d in docs:
        if d.get("deprecated_id"):
            children.setdefault(str(d["deprecated_id"]), []).append(str(d["_id"]))
    groups: list[ConflictGroup] = []
    for parent, kids in sorted(children.items()):
        if len(kids) < 2:
            continue
        heads = []
        for kid in sorted(kids):
            head, seen = kid, {kid}
            while len(children.get(head, [])) == 1 and children[head][0] not in seen:
                head = children[head][0]
                seen.add(head)
            heads.append(_version(by_id[head]))
        groups.append(ConflictGroup("forked_edit", parent, heads))
    for d in docs:
        revs = d.get("_conflicts") or []
        if not revs:
            continue
        versions = [_version(d)]
        hashes = {d.get("xml_sha256")}
        for rev in revs:
            other = couch.get(db, str(d["_id"]), rev=rev)
            if other:
                versions.append(_version(other))
                hashes.add(other.get("xml_sha256"))
        if len(hashes) == 1:
            continue  # the same record arrived two ways (edge and direct): one record, not an edit conflict
        groups.append(ConflictGroup("couch_conflict", str(d["_id"]), versions))
    return groups


def render_conflicts(groups: list[ConflictGroup], lang: str = "vi") -> list[str]:
    en = lang == "en"
    if not groups:
        return ["No conflicting edits." if en else "Không có phiếu bị sửa ở hai nơi."]
    lines = [f"{len(groups)} records edited in two places (every version kept):" if en else
             f"{len(groups)} phiếu bị sửa ở hai nơi (giữ mọi phiên bản):"]
    for g in groups:
        kind = ("forked edit" if en else "sửa hai nhánh") if g.kind == "forked_edit" else \
            ("CouchDB conflict" if en else "xung đột CouchDB")
        lines.append(f"- {g.record} ({kind})")
        w = g.winner
        for v in sorted(g.versions, key=Version.key, reverse=True):
            mark = ("WINNER" if en else "CHỌN") if v is w else "      "
            lines.append(f"    {mark} {v.id} rev {v.rev[:12]} end={shown(v.end) or '—'} "
                         f"received_at={shown(v.received_at) or '—'} by={v.received_by or '—'}")
    return lines
