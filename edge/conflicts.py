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

**Which version counts** is rule 1 of ``aggregator.versions`` (the same function ingestion applies):
an officer's recorded choice, else the latest form ``end`` time, then the latest ``received_at``, then the
greatest instanceID (for CouchDB conflicts, which share one instanceID, the revision breaks the last tie).
Nothing is deleted: losers stay stored and listed; ``carecheck conflicts choose RECORD INSTANCE_ID`` picks
another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from aggregator.versions import Candidate, record_of, winner
from core.couch import Couch, Doc
from core.localtime import shown
from core.settings import Settings
from core.xmlsafe import hardened_parser

_PARSER = hardened_parser()


@dataclass
class Version:
    id: str
    rev: str
    end: str | None
    received_at: str | None
    received_by: str | None
    submitted_by: str | None

    def candidate(self) -> Candidate:
        return Candidate(self.id, parse_time(self.end), parse_time(self.received_at))

    def key(self) -> tuple[Any, ...]:
        return (*self.candidate().rank(), self.rev)


@dataclass
class ConflictGroup:
    kind: str  # forked_edit | couch_conflict
    record: str  # the original instanceID (forked edits), or the doc id with _conflicts
    versions: list[Version] = field(default_factory=list)  # the heads of the record
    chosen: str | None = None  # an officer's pick (instanceID), when recorded

    @property
    def winner(self) -> Version:
        if self.kind == "forked_edit":
            w = winner([v.candidate() for v in self.versions], self.chosen)
            return next(v for v in self.versions if v.id == w.id)
        return max(self.versions, key=Version.key)

    def ordered(self) -> list[Version]:
        """The version that counts first, then the others by the rule."""
        w = self.winner
        return [w, *sorted((v for v in self.versions if v is not w), key=Version.key, reverse=True)]

    def as_dict(self) -> dict[str, Any]:
        w = self.winner
        return {
            "kind": self.kind,
            "record": self.record,
            "winner": {"id": w.id, "rev": w.rev},
            "chosen_by_officer": self.chosen is not None and w.id == self.chosen,
            "versions": [vars(v) for v in self.ordered()],
        }


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
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
    return Version(
        id=str(doc["_id"]),
        rev=str(doc.get("_rev", "")),
        end=form_end(doc.get("xml")),
        received_at=doc.get("received_at"),
        received_by=doc.get("received_by"),
        submitted_by=doc.get("submitted_by"),
    )


def _all_submissions(couch: Couch, db: str) -> list[Doc]:
    docs: list[Doc] = []
    if not couch.db_exists(db):
        return docs  # nothing submitted yet: no conflicts
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


def find_conflicts(
    couch: Couch, settings: Settings, choices: dict[str, str] | None = None
) -> list[ConflictGroup]:
    """Every forked edit and every CouchDB conflict in the submissions database, winners by rule 1
    (``choices``: record → instanceID picked by an officer, as stored on the province)."""
    db = settings.submissions_db
    docs = _all_submissions(couch, db)
    by_id = {str(d["_id"]): d for d in docs}
    children: dict[str, list[str]] = {}
    for d in docs:
        if d.get("deprecated_id"):
            children.setdefault(str(d["deprecated_id"]), []).append(str(d["_id"]))
    parent_of = {str(d["_id"]): d.get("deprecated_id") or None for d in docs}
    forks: dict[str, list[str]] = {}  # record → heads (versions no live edit replaces)
    for parent, kids in sorted(children.items()):
        if len(kids) >= 2:
            forks.setdefault(record_of(parent, parent_of), [])
    for doc_id in sorted(by_id):
        rec = record_of(doc_id, parent_of)
        if rec in forks and not children.get(doc_id):
            forks[rec].append(doc_id)
    groups = [
        ConflictGroup("forked_edit", rec, [_version(by_id[h]) for h in heads], (choices or {}).get(rec))
        for rec, heads in sorted(forks.items())
        if len(heads) >= 2
    ]
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
    lines = [
        f"{len(groups)} records edited in two places (every version kept):"
        if en
        else f"{len(groups)} phiếu bị sửa ở hai nơi (giữ mọi phiên bản):"
    ]
    for g in groups:
        kind = (
            ("forked edit" if en else "sửa hai nhánh")
            if g.kind == "forked_edit"
            else ("CouchDB conflict" if en else "xung đột CouchDB")
        )
        lines.append(f"- {g.record} ({kind})")
        w = g.winner
        if g.chosen is not None and w.id == g.chosen:
            lines.append("    (cán bộ đã chọn / chosen by an officer)")
        for v in g.ordered():
            mark = ("WINNER" if en else "CHỌN") if v is w else "      "
            lines.append(
                f"    {mark} {v.id} rev {v.rev[:12]} end={shown(v.end) or '—'} "
                f"received_at={shown(v.received_at) or '—'} by={v.received_by or '—'}"
            )
    return lines
