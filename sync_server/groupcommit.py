"""Group commit of new submission documents: concurrent creates written together in one ``_bulk_docs``.

A commune team back in coverage sends together; one ``PUT`` per record makes the store commit once per record.
Here every create joins a queue; a batch task takes what is queued (up to ``batch_docs`` documents or
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
for sequential ``PUT``s. With no other create in flight a document is written at once (no added wait for one
phone). It all runs on the server's event loop, the write included (``Couch.hot_post``): no thread hop.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from dataclasses import dataclass
from urllib.parse import quote

from core.couch import Couch, Doc, DocExists
from core.errors import Problem, StoreUnavailable


@dataclass
class _Pending:
    doc_id: str
    body: bytes  # the document as JSON, attachments inline
    answer: asyncio.Future[str]  # the new revision, or DocExists / StoreUnavailable


class GroupCommit:
    """Creates for one database, written in groups; :meth:`create` returns its own document's result.

    On the event loop, no thread: a create joins the queue and, when no batch is being gathered and a writer
    slot is free, a batch task gathers (the queue, up to the limits) and writes it with ``Couch.hot_post``.
    ``writers`` batches may be written at once (the store works on one while the next is gathered).
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
        self._gathering = False  # one batch is gathered at a time
        self._writing = 0  # batches being written now
        self._joined: asyncio.Event | None = None  # set when a create joins while a batch is gathered
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches written (tests)

    async def create(self, doc: Doc, attachments: dict[str, tuple[str, bytes]] | None = None) -> str:
        """Write a new document (attachments inline); its revision, or DocExists / StoreUnavailable."""
        body = dict(doc)
        if attachments:
            body["_attachments"] = {
                name: {"content_type": ctype, "data": base64.b64encode(data).decode("ascii")}
                for name, (ctype, data) in attachments.items()
            }
        item = _Pending(str(doc["_id"]), json.dumps(body).encode("utf-8"),
                        asyncio.get_running_loop().create_future())
        # A caller that went away never reads its answer: mark it read, or asyncio logs the exception.
        item.answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(item)
        if self._joined is not None:
            self._joined.set()
        self._lead()
        # Shielded: a caller that goes away (a dropped phone) does not take its document out of a batch.
        return await asyncio.shield(item.answer)

    def _lead(self) -> None:
        """Start gathering the next batch when there is work, none is being gathered and a writer is free."""
        if self._queue and not self._gathering and self._writing < self._n_writers:
            self._gathering = True
            task = asyncio.get_running_loop().create_task(self._batch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _batch(self) -> None:
        try:
            batch = await self._gather()
            self._writing += 1
        finally:
            self._gathering = False
        self._lead()  # the next batch may be gathered while this one is written
        try:
            await self._write(batch)
        finally:
            self._writing -= 1
            self.batches += 1
            self._lead()

    async def _gather(self) -> list[_Pending]:
        """Take the next batch: if another batch is being written meanwhile, wait up to ``window`` seconds
        for more (an idle store gets the documents at once: one phone waits for nothing)."""
        if self._writing:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.window
            while len(self._queue) < self.batch_docs:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._joined = asyncio.Event()
                try:
                    await asyncio.wait_for(self._joined.wait(), left)
                except TimeoutError:
                    break
                finally:
                    self._joined = None
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
        return batch

    async def _write(self, batch: list[_Pending]) -> None:
        body = b'{"docs":[' + b",".join(p.body for p in batch) + b"]}"
        try:
            answer = await self.couch.hot_post(
                f"{quote(self.db, safe='')}/_bulk_docs", body, action=f"store {len(batch)} record(s)",
                ok=(201, 202),
            )
            results = {str(row.get("id")): row for row in json.loads(answer)}
        except Problem as exc:
            for p in batch:
                _answer(p, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every waiter is answered, whatever happened
            failed = StoreUnavailable(
                "Kho dữ liệu báo lỗi; hãy gửi lại sau.",
                f"The data store write failed ({type(exc).__name__}); send again later.",
            )
            for p in batch:
                _answer(p, failed)
            return
        except BaseException:  # cancelled (shutdown): nothing acknowledged, the phones send again
            for p in batch:
                _answer(p, StoreUnavailable("Máy chủ đang dừng; hãy gửi lại sau.",
                                            "The server is stopping; send again later."))
            raise
        for p in batch:
            row = results.get(p.doc_id)
            if row is None:
                _answer(p, StoreUnavailable("Kho dữ liệu không trả lời cho phiếu này; hãy gửi lại.",
                                            "The store gave no result for this record; send again."))
            elif row.get("rev") and not row.get("error"):
                _answer(p, str(row["rev"]))
            elif row.get("error") in ("conflict", "forbidden"):  # forbidden: validate_doc_update
                _answer(p, DocExists(f"Document {p.doc_id} already exists."))
            else:
                _answer(p, StoreUnavailable(
                    "Kho dữ liệu từ chối ghi phiếu; hãy gửi lại sau.",
                    f"The data store refused the record ({row.get('error')}); send again later.",
                ))


def _answer(p: _Pending, result: str | BaseException) -> None:
    if p.answer.done():
        return
    if isinstance(result, BaseException):
        p.answer.set_exception(result)
    else:
        p.answer.set_result(result)
