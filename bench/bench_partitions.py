"""How a partition's follower should read the one ``_changes`` feed: three ways, against reading it once.

N household submissions in a fresh pouchdb-server; every partition of ``P`` = 4 reads the whole feed in pages
of ``ingest_page_size`` × P changes, one partition after the other (what P followers do in total):

* ``client_filter``: ``_changes?include_docs=true`` and the follower drops the other partitions' documents;
* ``ids_then_docs`` (what ``aggregator.feed`` does): ``_changes`` without documents, then one
  ``POST _all_docs?include_docs=true`` with this partition's ids;
* ``server_filter``: a design-document filter function hashing the id (CRC-32, as ``feed.part_of``) on the
  server, ``_changes?filter=…&include_docs=true``.

Figures: seconds of each, and ``<way>_vs_one_read`` = the time to read the feed once with documents
(what one follower without partitions reads) / the time all P partitions take that way — 1/P would mean each
partition costs a full read. Each way returns exactly the documents of its partition (checked).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from aggregator.feed import Part, part_of, read_page
from core.couch import Couch
from core.services import start_pouchdb
from tests.aggregator.factory import households

P = 4
PAGE = 200
# CRC-32 (IEEE, as zlib.crc32) of the UTF-8 id, modulo the partition count: the same partition as feed.part_of
FILTER = """function (doc, req) {
  var s = unescape(encodeURIComponent(doc._id)), c = -1, i, k;
  for (i = 0; i < s.length; i++) {
    c ^= s.charCodeAt(i);
    for (k = 0; k < 8; k++) c = (c >>> 1) ^ (0xEDB88320 & -(c & 1));
  }
  return ((c ^ -1) >>> 0) % parseInt(req.query.count, 10) === parseInt(req.query.part, 10);
}"""


def _read_all(fn: Any) -> tuple[float, int]:
    t = time.monotonic()
    n = sum(fn(p) for p in range(P))
    return time.monotonic() - t, n


def run(quick: bool = False) -> dict[str, Any]:
    n = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="bench_partitions_") as tmp:
        cp = start_pouchdb(Path(tmp) / "couch", user="admin", password="admin")
        couch = Couch(cp.url, "admin", "admin", timeout=300)
        db = "bench_partitions"
        try:
            couch.ensure_db(db)
            for start in range(0, n, 2000):
                couch.bulk_docs(db, households(min(2000, n - start), seed=5, start=start).docs)
            couch.put_design(db, {"_id": "_design/part", "filters": {"by_hash": FILTER}})

            def pages(read: Any) -> int:
                since, got = "0", 0
                while True:
                    docs, since, scanned = read(since)
                    got += docs
                    if scanned < PAGE * P:
                        return got

            def once(since: str) -> tuple[int, str, int]:
                res, last = couch.changes(db, since=since, limit=PAGE * P, include_docs=True)
                return len(res), last, len(res)

            def client(p: int) -> int:
                def read(since: str) -> tuple[int, str, int]:
                    res, last = couch.changes(db, since=since, limit=PAGE * P, include_docs=True)
                    return sum(part_of(str(r["id"]), P) == p for r in res), last, len(res)

                return pages(read)

            def ids_docs(p: int) -> int:
                def read(since: str) -> tuple[int, str, int]:
                    page = read_page(couch, db, since, PAGE * P, Part(p, P))
                    return len(page.results), page.last_seq, page.scanned

                return pages(read)

            def server(p: int) -> int:
                since, got = "0", 0
                while True:  # a filtered page has up to `limit` matches: read until a short page
                    res, since = couch.changes(
                        db, since=since, limit=PAGE, include_docs=True, filter="part/by_hash", part=p, count=P
                    )
                    got += sum(part_of(str(r["id"]), P) == p for r in res)
                    if len(res) < PAGE:
                        return got

            t_once = time.monotonic()
            assert pages(once) >= n
            t_once = time.monotonic() - t_once
            out: dict[str, Any] = {"documents": n, "partitions": P, "one_read_s": round(t_once, 2)}
            for name, fn in (
                ("client_filter", client),
                ("ids_then_docs", ids_docs),
                ("server_filter", server),
            ):
                seconds, got = _read_all(fn)
                assert got >= n, f"{name} returned {got} of {n} documents"
                out[f"{name}_s"] = round(seconds, 2)
                out[f"{name}_vs_one_read"] = round(t_once / seconds, 3)
        finally:
            couch.close()
            cp.stop()
    return out
