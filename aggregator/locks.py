"""PostgreSQL advisory lock keys shared by ingestion and the indicator builds (a leaf module: no imports of
ours, so both sides can import it)."""

from __future__ import annotations

import zlib

# The transaction-scoped advisory lock over writes to the source tables (PostgreSQL): an ingestion page takes
# it before its first write — shared, or exclusive when partitions write one at a time — and a full indicator
# build exclusive while it reads every row (``aggregator.rollup.build``), so a page waits for the build (and
# the build for the pages already writing) before either holds a table lock: the two never deadlock.
WRITE_LOCK = zlib.crc32(b"carecheck:ingest:write") & 0x7FFFFFFF
