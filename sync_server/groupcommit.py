"""Group commit of new submission documents: concurrent creates written together in one ``_bulk_docs``.

A commune team back in coverage sends together; one ``PUT`` per record makes the store commit once per record.
Here every create joins a queue; one caller takes what is queued (up to ``batch_docs`` documents or
``batch_bytes`` of body, after at most ``window`` seconds of gathering) and writes it as one ``_bulk_docs``.
Each caller returns only when the store has answered for *its* document, with that document's own result:

* ``ok`` → the new revision (the caller's 201 follows; durability is the store's own for ``_bulk_docs``,
  exactly as for a single ``PUT``: CouchDB 3 commits a request before it answers);
* ``conflict``, or ``forbidden`` from the append-only ``validate_doc_update`` → :class:`DocExists`, and
  the caller applies the duplicate/edit rules as for a lost ``PUT`` race (``store.Submissions.store``);
* the batch failing as a whole (store down, 5xx, a dropped connection) → every caller in it gets the
  :class:`StoreUnavailable` (503): nothing in a failed batch is acknowledged; the phones send again.

Two documents with one id never share a batch: the later waits for the next one, so the store decides between
a resend and its original, two parts of one record, or two records claiming one instanceID exactly as it does
for sequential ``PUT``s. With no other create in flight a document is written at once, by its own caller (no
added wait and no thread hop for one phone).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import quote

from core.couch import Couch, Doc, DocExists
from core.errors import Problem, StoreUnavailable


@dataclass
class _Pending:
    doc_id: str
    body: bytes  # the document as JSON, attachments inline
    done: bool = False
    rev: str | None = None
    error: BaseException | None = None


class GroupCommit:
    """Creates for one database, written in groups; :meth:`create` returns its own document's result.

    Leader/follower, no thread of its own: a caller that finds no batch being gathered and a writer slot
    free gathers one (its own document and whatever is queued) and writes it in its own thread; the others
    wait until their document is answered or it is their turn to lead. ``writers`` batches may be written at
    once (the store works on one while the next is gathered).
    """

    def __init__(self, couch: Couch, db: str, *, window: float = 0.002, batch_docs: int = 32,
                 batch_bytes: int = 16_000_000, writers: int = 2):
        self.couch = couch
        self.db = db
        self.window = window
        self.batch_docs = max(1, batch_docs)
        self.batch_bytes = batch_bytes
        self._n_writers = max(1, writers)
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._gathering = False  # one leader gathers at a time
        self._writing = 0  # batches being written now
        self.batches = 0  # batches written (tests): counted under the lock, two writers may finish at once

    def create(self, doc: Doc, attachments: dict[str, tuple[str, bytes]] | None = None) -> str:
        """Write a new document (attachments inline); its revision, or DocExists / StoreUnavailable."""
        body = dict(doc)
        if attachments:
            body["_attachments"] = {
                name: {"content_type": ctype, "data": base64.b64encode(data).decode("ascii")}
                for name, (ctype, data) in attachments.items()
            }
        item = _Pending(str(doc["_id"]), json.dumps(body).encode("utf-8"))
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()
            while not item.done:
                if self._gathering or self._writing >= self._n_writers or not self._queue:
                    self._cond.wait()
                    continue
                batch = self._gather()
                self._cond.release()
                try:
                    self._write(batch)
                finally:
                    self._cond.acquire()
                    self._writing -= 1
                    self.batches += 1
                    self._cond.notify_all()  # the answered return; one of the rest leads next
        if item.error is not None:
            raise item.error
        assert item.rev is not None
        return item.rev

    def _gather(self) -> list[_Pending]:
        """Take the next batch (called holding the lock): if another batch is being written meanwhile, wait
        up to ``window`` seconds for more (an idle store gets the documents at once: one phone waits for
        nothing)."""
        self._gathering = True
        try:
            deadline = time.monotonic() + (self.window if self._writing else 0.0)
            while len(self._queue) < self.batch_docs:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[_Pending] = []
            ids: set[str] = set()
            size = 0
            kept: deque[_Pending] = deque()
            while self._queue and len(batch) < self.batch_docs:
                item = self._queue.popleft()
                if item.doc_id in ids or (batch and size + len(item.body) > self.batch_bytes):
                    kept.append(item)  # same id as one in this batch, or the batch is full: next batch
                    continue
                batch.append(item)
                ids.add(item.doc_id)
                size += len(item.body)
            self._queue.extendleft(reversed(kept))
            self._writing += 1
            return batch
        finally:
            self._gathering = False
            self._cond.notify_all()  # another caller may gather the rest while this batch is written

    def _write(self, batch: list[_Pending]) -> None:
        body = b'{"docs":[' + b",".join(p.body for p in batch) + b"]}"
        try:
            answer = self.couch.hot_post(  # the lean keep-alive path: requests costs ~2 ms of CPU a call
                f"{quote(self.db, safe='')}/_bulk_docs", body, action=f"store {len(batch)} record(s)",
                ok=(201, 202),
            )
            results = {str(row.get("id")): row for row in json.loads(answer)}
        except Problem as exc:
            for p in batch:
                p.error = exc
                p.done = True
            return
        except Exception as exc:  # noqa: BLE001 - a writer thread must answer every waiter, whatever happened
            failed = StoreUnavailable(
                "Kho dữ liệu báo lỗi; hãy gửi lại sau.",
                f"The data store write failed ({type(exc).__name__}); send again later.",
            )
            for p in batch:
                p.error = failed
                p.done = True
            return
        for p in batch:
            row = results.get(p.doc_id)
            if row is None:
                p.error = StoreUnavailable("Kho dữ liệu không trả lời cho phiếu này; hãy gửi lại.",
                                           "The store gave no result for this record; send again.")
            elif row.get("rev") and not row.get("error"):
                p.rev = str(row["rev"])
            elif row.get("error") in ("conflict", "forbidden"):  # forbidden: validate_doc_update
                p.error = DocExists(f"Document {p.doc_id} already exists.")
            else:
                p.error = StoreUnavailable(
                    "Kho dữ liệu từ chối ghi phiếu; hãy gửi lại sau.",
                    f"The data store refused the record ({row.get('error')}); send again later.",
                )
            p.done = True
