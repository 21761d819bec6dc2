"""Reading the submissions ``_changes`` feed for the follower: partitions and pages read ahead.

**Partitions.** ``ingest_partitions`` = N splits the feed by a stable hash of the document id (CRC-32 of the
UTF-8 id, modulo N): partition p holds every change of the documents that hash to p, in feed order. CouchDB
has one feed per database, so each partition's follower reads the whole feed and keeps its own documents:
with N = 1 a page is ``_changes?include_docs=true``; with N > 1 it is ``_changes`` without documents (ids,
revisions and deletions: small) and then one ``POST _all_docs?include_docs=true`` for this partition's
ids, so no document body is sent to a follower that drops it. (bench/bench_partitions.py measures this
against a design-document filter function hashing on the server; see README.) A partition's checkpoint moves
over the other partitions' changes too, in the same transaction as its own rows.

**Read-ahead.** ``PageReader`` fetches page k+1 on a thread of its own (its own HTTP session) and maps it to
rows (``ingest.map_page``) while page k is written to SQL, so CouchDB, the mapping and PostgreSQL work at
once. A page read ahead is only
a guess: the writer commits it only if the checkpoint still stands where the page starts (compare-and-swap),
otherwise it is dropped and reading restarts at the committed checkpoint.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.couch import Couch
from core.settings import Settings


@dataclass(frozen=True)
class Part:
    """Partition ``index`` of ``count`` (count 1: the whole feed)."""

    index: int = 0
    count: int = 1

    def owns(self, doc_id: str) -> bool:
        return self.count == 1 or part_of(doc_id, self.count) == self.index

    def suffix(self) -> str:
        return "" if self.count == 1 else f"#{self.index}/{self.count}"


def part_of(doc_id: str, count: int) -> int:
    """The partition of a document id (stable across processes, machines and Python versions)."""
    return zlib.crc32(doc_id.encode("utf-8")) % count


def parts(settings: Settings) -> list[Part]:
    n = settings.ingest_partitions
    return [Part(i, n) for i in range(n)]


@dataclass
class Page:
    since: str
    last_seq: str
    results: list[dict[str, Any]] = field(default_factory=list)  # this partition's changes, with docs
    scanned: int = 0  # feed changes read (all partitions): fewer than the limit means the feed is drained
    mapped: Any = None  # the results mapped to rows by the reader's ``mapper`` (ingest.MappedPage)


def read_page(couch: Couch, db: str, since: str, limit: int, part: Part) -> Page:
    """One page of ``part`` starting after ``since`` (``limit`` feed changes are scanned)."""
    if part.count == 1:
        results, last = couch.changes(db, since=since, limit=limit, include_docs=True)
        return Page(since, last, results, len(results))
    changes, last = couch.changes(db, since=since, limit=limit, include_docs=False)
    mine = [c for c in changes if part.owns(str(c.get("id")))]
    live = [str(c["id"]) for c in mine if not c.get("deleted")]
    docs: dict[str, Any] = {}
    if live:
        rows = couch.all_docs_by_keys(db, live)
        docs = {str(r.get("key")): r.get("doc") for r in rows if r.get("doc")}
    results = []
    for c in mine:
        doc_id = str(c["id"])
        doc = docs.get(doc_id)
        if c.get("deleted") or doc is None:  # deleted now, or between the two reads: its deletion lands
            results.append({"id": doc_id, "seq": c.get("seq"), "deleted": True, "doc": {"_id": doc_id}})
        else:
            results.append({"id": doc_id, "seq": c.get("seq"), "doc": doc})
    return Page(since, last, results, len(changes))


class PageReader:
    """Reads one partition's pages one ahead of the writer, on its own thread and HTTP session, and maps
    them to rows there (``mapper``: pure Python, which runs while the writer waits for PostgreSQL)."""

    def __init__(
        self,
        settings: Settings,
        part: Part,
        limit: int,
        mapper: Callable[[list[dict[str, Any]]], Any] | None = None,
    ) -> None:
        self.db = settings.submissions_db
        self.part, self.limit, self.mapper = part, limit, mapper
        self.couch = Couch.from_settings(settings, timeout=60)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="carecheck-feed")
        self.ahead: Future[Page] | None = None

    def _read(self, since: str) -> Page:
        page = read_page(self.couch, self.db, since, self.limit, self.part)
        if self.mapper is not None and page.results:
            page.mapped = self.mapper(page.results)
        return page

    def page(self, since: str) -> Page:
        """The page after ``since`` (the one read ahead if it starts there); starts reading the next one."""
        ahead, self.ahead = self.ahead, None
        page = None
        if ahead is not None:
            try:
                page = ahead.result()
            except Exception:  # noqa: BLE001 - a failed read-ahead is read again below, errors raised there
                page = None
        if page is None or page.since != since:
            page = self._read(since)
        if page.scanned >= self.limit:  # more to come: read it while this one is written
            self.ahead = self.pool.submit(self._read, page.last_seq)
        return page

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.couch.close()
