"""Group commit of new submission documents: concurrent creates written together in one ``_bulk_docs``.

A commune team back in coverage sends together; one ``PUT`` per record makes the store commit once per record.
Here every create waits in a queue; a writer thread takes what is queued (up to ``batch_docs`` documents or
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
for sequential ``PUT``s. With no other create in flight a document is written at once (no added latency for
one phone). ``writers`` batches may be in flight together (the store works on one while the next gathers).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import quote

from core.couch import Couch, Doc, DocExists
from core.errors import Problem, StoreUnavailable


@dataclass
class _Pending:
    doc_id: str
    body: bytes  # the document as JSON, attachments inline
    done: threading.Event = field(default_factory=threading.Event)
    rev: str | None = None
    error: BaseException | None = None


class GroupCommit:
    """Queue of creates for one database; :meth:`create` blocks until its own document's result is known."""

    def __init__(self, couch: Couch, db: str, *, window: float = 0.002, batch_docs: int = 32,
                 batch_bytes: int = 16_000_000, writers: int = 2):
        self.couch = couch
        self.db = db
        self.window = window
        self.batch_docs = max(1, batch_docs)
        self.batch_bytes = batch_bytes
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._writers: list[threading.Thread] = []
        self._n_writers = max(1, writers)
        self._closed = False
        self._inflight = 0  # batches being written now
        self.batches = 0  # statistics (bench and tests): batches written and documents in them
        self.written = 0

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
            if self._closed:
                raise StoreUnavailable("Máy chủ đang dừng; hãy gửi lại sau.",
                                       "The server is stopping; send again.")
            if not self._writers:
                self._start_writers()
            self._queue.append(item)
            self._cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.rev is not None
        return item.rev

    def close(self) -> None:
        """Stop the writers once the queue is empty (what is queued is still written and answered).

        A later :meth:`create` starts them again (an app may be started and stopped more than once)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            writers, self._writers = self._writers, []
        for t in writers:
            t.join(timeout=30)
        with self._cond:
            self._closed = False

    # --- writer side ---
    def _start_writers(self) -> None:
        for k in range(self._n_writers):
            t = threading.Thread(target=self._run, name=f"group-commit-{k}", daemon=True)
            t.start()
            self._writers.append(t)

    def _take(self) -> list[_Pending] | None:
        """The next batch: waits for a first document; if another batch is being written meanwhile,
        gathers for at most ``window`` seconds (an idle store gets it at once: one phone waits for none)."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + (self.window if self._inflight else 0.0)
            while len(self._queue) < self.batch_docs and not self._closed:
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
            self._inflight += 1
            if self._queue:
                self._cond.notify()  # another writer may start on the rest now
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._inflight -= 1

    def _write(self, batch: list[_Pending]) -> None:
        body = b'{"docs":[' + b",".join(p.body for p in batch) + b"]}"
        try:
            r = self.couch.request(
                "POST", f"{quote(self.db, safe='')}/_bulk_docs", data=body,
                headers={"Content-Type": "application/json"}, action=f"store {len(batch)} record(s)",
                ok=(201, 202),
            )
            results = {str(row.get("id")): row for row in r.json()}
        except Problem as exc:
            for p in batch:
                p.error = exc
                p.done.set()
            return
        except Exception as exc:  # noqa: BLE001 - a writer thread must answer every waiter, whatever happened
            failed = StoreUnavailable(
                "Kho dữ liệu báo lỗi; hãy gửi lại sau.",
                f"The data store write failed ({type(exc).__name__}); send again later.",
            )
            for p in batch:
                p.error = failed
                p.done.set()
            return
        self.batches += 1
        self.written += len(batch)
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
            p.done.set()
