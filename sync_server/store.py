"""Submission storage in CouchDB (contracts §3): the design doc, atomic creates, attachment merges, reads."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool

from core import orgunits
from core.couch import Couch, Doc, DocExists
from core.errors import BadRequest
from core.settings import Settings
from core.stores import DDOC
from sync_server import writerule
from sync_server.groupcommit import GroupCommit

log = logging.getLogger("carecheck.sync.store")


@dataclass
class Stored:
    """What happened to a submission: 'created', 'duplicate' (identical resend) or 'conflict'."""

    outcome: str
    doc_id: str
    added_attachments: list[str]


class Submissions:
    """Reads and writes of submission documents."""

    def __init__(self, couch: Couch, settings: Settings):
        self.couch = couch
        self.db = settings.submissions_db
        self.commit = GroupCommit(
            couch, self.db, window=settings.intake_batch_window_ms / 1000,
            batch_docs=settings.intake_batch_docs, batch_bytes=settings.max_submission_bytes,
        )

    def get(self, doc_id: str) -> Doc | None:
        doc = self.couch.get(self.db, doc_id)
        return doc if doc and doc.get("type") == "submission" else None

    def attachment(self, doc_id: str, name: str) -> bytes | None:
        return self.couch.get_attachment(self.db, doc_id, name)

    async def store(self, doc: Doc, attachments: dict[str, tuple[str, bytes]]) -> Stored:
        """Create in one round trip; on an existing id decide duplicate vs conflict from the stored hash.

        Concurrent creates are written together (``groupcommit``: one ``_bulk_docs``, each caller answered
        with its own document's result), on the event loop. CouchDB decides the race between two identical
        POSTs: the loser gets a conflict on create, re-reads and compares hashes (:meth:`complete`, in the
        thread pool like every other store call). Checked after the write, so the common path costs no read.
        """
        try:
            rev = await self.commit.create(doc, attachments)
        except DocExists:
            return await run_in_threadpool(self.complete, doc, attachments)
        if rev.startswith("1-"):
            return Stored("created", doc["_id"], sorted(attachments))
        # CouchDB lets a create without a revision extend a deleted record's tombstone (rev 3-…): the
        # province deleted it, so put the deletion back and refuse (writerule: an id is never reused).
        await run_in_threadpool(self.couch.delete, self.db, doc["_id"], rev)
        return Stored("conflict", doc["_id"], [])

    def complete(self, doc: Doc, attachments: dict[str, tuple[str, bytes]]) -> Stored:
        """``doc`` resends a stored record: add the attachments the stored one lacks, if its author may
        (:func:`writerule.may_complete`; split uploads, an edge's later revision). Each attachment is PUT with
        ?rev= and retried on a conflict, so running it twice changes nothing; an attachment the store holds
        is never replaced. 'conflict' when the stored record has other content (or was deleted).
        """
        for _ in range(20):
            current = self.couch.get(self.db, doc["_id"])
            # A deleted record is not brought back by a resend (writerule: an id is never overwritten).
            if current is None or not writerule.same_content(current, str(doc["xml_sha256"])):
                return Stored("conflict", doc["_id"], [])
            missing = [n for n in attachments if n not in (current.get("_attachments") or {})]
            if not missing or not writerule.may_complete(current, doc):
                return Stored("duplicate", doc["_id"], [])
            rev = str(current["_rev"])
            try:
                for name in missing:
                    ctype, data = attachments[name]
                    rev = self.couch.put_attachment(self.db, doc["_id"], rev, name, ctype, data)
            except DocExists:
                continue  # another part landed meanwhile: re-read and add what is still missing
            return Stored("duplicate", doc["_id"], missing)
        return Stored("duplicate", doc["_id"], [])

    def lookup(self, ids: list[str]) -> dict[str, Doc | None]:
        """Each id's stored doc, ``{"_id", "_deleted": True}`` for a deleted one, None for an unknown one.

        One ``_all_docs?keys=`` read: deleted ids come back as rows with ``value.deleted`` (so a push cannot
        bring a deleted record back), unknown ones as ``error: not_found``.
        """
        if not ids:
            return {}
        r = self.couch.request(
            "POST", f"{quote(self.db, safe='')}/_all_docs", params={"include_docs": "true"},
            json={"keys": sorted(set(ids))}, action="look up records",
        )
        out: dict[str, Doc | None] = {i: None for i in ids}
        for row in r.json().get("rows", []):
            key = row.get("key")
            if not isinstance(key, str) or "error" in row:
                continue
            if (row.get("value") or {}).get("deleted"):
                out[key] = {"_id": key, "_deleted": True}
            elif isinstance(row.get("doc"), dict):
                out[key] = row["doc"]
        return out

    def push(self, docs: list[Doc], *, new_edits: bool) -> list[Doc]:
        """Store documents the write rule accepted (``writerule.decide_batch``); CouchDB's per-doc results."""
        if not docs:
            return []
        if not new_edits:
            return self.couch.bulk_docs(self.db, docs, new_edits=False)
        # A plain write is a create (no revision): an id taken meanwhile is a per-doc conflict, not an update.
        return self.couch.bulk_docs(self.db, [{k: v for k, v in d.items() if k not in ("_rev", "_revisions")}
                                              for d in docs])

    def superseded_by(self, doc_id: str) -> list[str]:
        rows = self.couch.view(self.db, DDOC, "by_deprecated", key=doc_id)["rows"]
        return sorted(str(r["id"]) for r in rows)

    def versions(self, doc: Doc) -> list[Doc]:
        """The version chain, oldest first: back through deprecated_id, forward through edits."""
        chain = [doc]
        seen = {doc["_id"]}
        cur = doc
        while cur.get("deprecated_id") and cur["deprecated_id"] not in seen:
            prev = self.get(cur["deprecated_id"])
            if prev is None:
                break
            chain.insert(0, prev)
            seen.add(prev["_id"])
            cur = prev
        cur = doc
        while True:
            nxt = [i for i in self.superseded_by(cur["_id"]) if i not in seen]
            if not nxt:
                break
            nd = self.get(nxt[0])
            if nd is None:
                break
            chain.append(nd)
            seen.add(nd["_id"])
            cur = nd
        return chain

    def page(
        self, area: str, *, form_id: str | None, since: str | None, limit: int
    ) -> tuple[list[Doc], str | None]:
        """Submissions received after ``since`` (ISO time or a cursor from the last page), oldest first.

        Order is (received_at, _id): a Mango index on received_at returns equal keys in doc id order (view
        collation), so a cursor (time, id) first finishes the records of its second, then moves past it.
        """
        after_time, after_id = decode_since(since)
        base: Doc = {"type": "submission"}
        if form_id:
            base["form_id"] = form_id
        if area != orgunits.PROVINCE_CODE:
            base["$or"] = [
                {"area": {"$in": orgunits.area_codes(area)}},
                {"org_unit": {"$elemMatch": {"$eq": area}}},
            ]
        docs: list[Doc] = []
        if after_time and after_id is not None:
            docs = self._find({**base, "received_at": after_time, "_id": {"$gt": after_id}}, limit)
        if len(docs) < limit:
            later = {"$gt": after_time} if after_time else {"$gt": None}
            docs += self._find({**base, "received_at": later}, limit - len(docs))
        nxt = encode_cursor(docs[-1]["received_at"], docs[-1]["_id"]) if len(docs) == limit else None
        return docs, nxt

    def _find(self, selector: Doc, limit: int) -> list[Doc]:
        fields = ["_id", "form_id", "form_version", "received_at", "submitted_by", "device_id", "area",
                  "org_unit", "deprecated_id", "_attachments"]  # fmt: skip
        docs = self.couch.find(self.db, selector, fields=fields, limit=limit, sort=[{"received_at": "asc"}])
        return list(docs["docs"])

    def device_stats(self) -> list[tuple[str | None, str, str, int, str]]:
        """(device_id, submitted_by, area, count, last received_at) per phone and account."""
        rows = self.couch.view(self.db, DDOC, "device_stats", group=True)["rows"]
        return [(r["key"][0], r["key"][1], r["key"][2], int(r["value"][0]), str(r["value"][1])) for r in rows]


def encode_cursor(received_at: str, doc_id: str) -> str:
    return "c1." + base64.urlsafe_b64encode(json.dumps([received_at, doc_id]).encode()).decode().rstrip("=")


def decode_since(since: str | None) -> tuple[str | None, str | None]:
    """``since``: an ISO-8601 UTC time (strictly after) or an opaque cursor ``c1.…`` (after that record)."""
    if not since:
        return None, None
    if since.startswith("c1."):
        raw = since[3:] + "=" * (-len(since[3:]) % 4)
        try:
            t, i = json.loads(base64.urlsafe_b64decode(raw.encode()))
            return str(t), str(i)
        except (ValueError, binascii.Error, TypeError) as exc:
            raise BadRequest(
                "Tham số since không hợp lệ.", "The since parameter is not a valid cursor."
            ) from exc
    try:
        t = datetime.fromisoformat(since.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise BadRequest(
            "since phải là thời điểm ISO-8601 (UTC) hoặc con trỏ trang trước.",
            "since must be an ISO-8601 UTC time or the cursor of the previous page.",
        ) from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    # Stored received_at has whole seconds ("…:SSZ"): "after 09:12:00.5" means "from 09:12:01 on".
    return t.astimezone(UTC).strftime(TIME_FORMAT) + ("" if t.microsecond == 0 else "\uffff"), None


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    """Server time as stored in received_at (contracts §3): UTC, whole seconds."""
    return datetime.now(UTC).strftime(TIME_FORMAT)
