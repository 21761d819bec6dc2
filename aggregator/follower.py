"""Follows the submissions database's ``_changes`` feed from a checkpoint in SQL, one page per transaction.

Design (why it is exactly-once and crash-safe):

* A page is ``_changes?since=<checkpoint>&limit=N&include_docs=true`` — bounded, so memory does not grow with
  the
  backlog. Its rows and the new checkpoint are written in **one transaction**. The transaction starts with a
  compare-and-swap ``UPDATE checkpoint SET seq=new WHERE name=… AND seq=old``: if another worker moved the
  checkpoint meanwhile (two workers racing, a replayed page), zero rows match and the page is rolled back. The
  UPDATE also takes the row lock, so on PostgreSQL a racing worker waits and then finds the seq moved.
* All row writes are upserts keyed on the document id (``ingest.apply_page``), so even a page applied twice (a
  checkpoint reset to 0, a rebuild) leaves the same rows.
* A worker killed mid-page (SIGKILL) leaves an open transaction the database rolls back: neither rows nor the
  checkpoint moved, and the next run re-reads the same page.
* The indicator refresh a page needs is recorded in the same transaction (``RefreshDue``, one row per touched
  submission; rule 8 of docs/contracts.md §9) and run after the commit, then cleared. A worker killed between
  the two leaves it due; every follower run first refreshes whatever is due, so the live indicators never fall
  behind the rows silently (``carecheck status`` shows refreshes still due).
* A document that fails goes to ``Quarantine`` in the same transaction and the feed moves on;
  ``retry_quarantine``
  re-fetches due documents with exponential back-off (30 s, 1 min, 2 min … capped at 6 h).

Near-real-time: Celery beat sends ``carecheck.follow`` every second (``expires`` 2 s, so a backlog of beats
never
piles up while no worker runs). Each run takes a non-blocking lock (a PostgreSQL advisory lock, or an
exclusive
``flock`` on a file next to the SQLite database — both released by the OS/server when the process dies, even
by
SIGKILL) so runs do not overlap, then drains pages until the feed is caught up or its time budget is spent. A
new
submission is therefore picked up within ~1 s (+ broker latency) of being stored.
"""

from __future__ import annotations

import fcntl
import logging
import random
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from aggregator import feed, hooks, ingest
from aggregator.db import get_engine, init_db
from aggregator.feed import Part
from aggregator.models import Checkpoint, Quarantine, RefreshDue, RegistryKey
from core.couch import Couch
from core.errors import ConfigError
from core.secrets import key_id, pseudonym_key
from core.settings import Settings, get_settings

log = logging.getLogger("carecheck.follower")
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 6 * 3600
# The RegistryKey row holding the id (core.secrets.key_id, not the key) of the pseudonym key this database's
# registry was built with: a follower with another key refuses to write instead of splitting children.
KEY_ID_ROW = "pseudonym"


def checkpoint_name(settings: Settings, part: Part | None = None) -> str:
    """The checkpoint row of the feed (one partition: ``changes:<db>``; else ``changes:<db>#<p>/<n>``)."""
    return f"changes:{settings.submissions_db}" + (part.suffix() if part else "")


def _seq_number(seq: str) -> int:
    head = seq.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _start_seq(session: Session, name: str) -> str:
    """Where a partition seen for the first time starts: the oldest checkpoint of the same feed under another
    partitioning (everything before it is in SQL; the overlap is re-applied as upserts), else "0"."""
    base, _, part = name.partition("#")
    count = part.rpartition("/")[2]
    names = session.exec(
        select(Checkpoint.name, Checkpoint.seq).where(
            (col(Checkpoint.name) == base) | col(Checkpoint.name).startswith(base + "#")
        )
    ).all()
    seqs = [seq for n, seq in names if n.partition("#")[2].rpartition("/")[2] != count]
    return min(seqs, key=_seq_number) if seqs else "0"


def _now() -> datetime:
    return datetime.now(UTC)


def read_checkpoint(session: Session, name: str) -> str:
    """The committed seq for ``name`` (creating the row at "0" on first use, race-free)."""
    cp = session.get(Checkpoint, name)
    if cp is not None:
        return cp.seq
    table = Checkpoint.__table__  # type: ignore[attr-defined]
    ins = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)
    start = _start_seq(session, name)
    session.execute(ins.values(name=name, seq=start, updated_at=_now()).on_conflict_do_nothing())
    session.commit()
    cp = session.get(Checkpoint, name)
    return cp.seq if cp else "0"


def reset_checkpoint(settings: Settings) -> str:
    """Set the checkpoint back to "0" so the next runs re-read the whole feed (upserts: nothing doubles);
    returns where it was.

    A replay is also how a new pseudonym key is adopted: the database records this process's key id, so from
    now on followers with the new key write and followers with the old one refuse (the replay re-links every
    child under the new key).
    """
    engine = init_db(settings)
    name = checkpoint_name(settings)
    kid = key_id(pseudonym_key(settings))
    with Session(engine) as session:
        old = read_checkpoint(session, name)
        session.execute(
            update(Checkpoint)
            .where((col(Checkpoint.name) == name) | col(Checkpoint.name).startswith(name + "#"))
            .values(seq="0", updated_at=_now())
        )
        was = session.get(RegistryKey, KEY_ID_ROW)
        if was is not None and was.key_id != kid:
            log.warning("pseudonym key id %s replaces %s: the replay re-links the registry", kid, was.key_id)
        ingest.upsert(session, RegistryKey, [{"name": KEY_ID_ROW, "key_id": kid, "recorded_at": _now()}])
        session.commit()
    return old


def check_pseudonym_key(session: Session, key: bytes) -> None:
    """Record the key id on first use; raise ConfigError if the database was built with another key."""
    kid = key_id(key)
    row = session.get(RegistryKey, KEY_ID_ROW)
    if row is None:
        table = RegistryKey.__table__  # type: ignore[attr-defined]
        ins = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)
        session.execute(ins.values(name=KEY_ID_ROW, key_id=kid, recorded_at=_now()).on_conflict_do_nothing())
        row = session.get(RegistryKey, KEY_ID_ROW)
    if row is not None and row.key_id != kid:
        raise ConfigError(
            f"Khoá bí danh (CARECHECK_PSEUDONYM_KEY, mã {kid}) khác khoá đã dùng cho cơ sở dữ liệu này (mã "
            f"{row.key_id}): đặt cùng một khoá cho mọi tiến trình; đổi khoá có chủ ý thì chạy "
            "`carecheck ingest --replay --once`",
            f"the pseudonym key (CARECHECK_PSEUDONYM_KEY, key id {kid}) differs from the key this database's "
            f"registry was built with (key id {row.key_id}): give every process the same key; to change the "
            "key on purpose, run `carecheck ingest --replay --once` with the new one",
        )


@dataclass
class FollowStats:
    pages: int = 0
    changes: int = 0
    ingested: int = 0
    deleted: int = 0
    quarantined: int = 0
    rows: int = 0
    lost_races: int = 0
    caught_up: bool = False
    locked_out: bool = False
    seq: str = "0"
    seconds: float = 0.0
    submission_ids: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("submission_ids")
        return d


def _quarantine(session: Session, failed: dict[str, str], seqs: dict[str, str], now: datetime) -> None:
    for doc_id, error in failed.items():
        q = session.get(Quarantine, doc_id)
        if q is None:
            q = Quarantine(submission_id=doc_id, first_failed_at=now, attempts=0)
            session.add(q)
        q.attempts += 1
        q.seq = seqs.get(doc_id, q.seq)
        q.error = error[:2000]
        q.last_failed_at = now
        q.next_attempt_at = now + timedelta(
            seconds=min(BACKOFF_BASE_S * 2 ** (q.attempts - 1), BACKOFF_MAX_S)
        )
        log.warning("quarantined %s: %s", doc_id, error.splitlines()[0][:200])


_REPEATS: dict[str, ingest.RepeatsOf] = {}


def _repeats_of(settings: Settings | None) -> ingest.RepeatsOf:
    """The compiled forms' repeat names (cached per build directory), or the contract's defaults."""
    if settings is None:
        return ingest.default_repeats
    key = str(settings.effective_forms_build_dir)
    if key not in _REPEATS:
        _REPEATS[key] = ingest.compiled_repeats(settings.effective_forms_build_dir)
    return _REPEATS[key]


def apply_changes(
    session: Session,
    results: list[dict[str, Any]],
    couch: Couch,
    db: str,
    settings: Settings | None = None,
    serialise: bool = False,
    mapped: ingest.MappedPage | None = None,
) -> ingest.PageOutcome:
    """Apply a page; if the batched write fails, redo it one document per savepoint to isolate the bad one.

    ``serialise``: partitions write one at a time (``ingest.apply_page``), after mapping their pages at once.
    """
    now = _now()
    repeats_of = _repeats_of(settings)
    key = pseudonym_key(settings or get_settings())
    check_pseudonym_key(session, key)  # before any write: a wrong key must not link a single child

    def fetch(doc_id: str) -> dict[str, Any] | None:
        return couch.get(db, doc_id)

    seqs = {str(r.get("id")): str(r.get("seq")) for r in results}
    sp = session.begin_nested()
    try:
        out = ingest.apply_page(
            session,
            results,
            key=key,
            now=now,
            fetch=fetch,
            repeats_of=repeats_of,
            serialise=serialise,
            mapped=mapped,
        )
        sp.commit()
    except Exception:  # noqa: BLE001 - a database error on the batch: find the culprit document by document
        sp.rollback()
        log.exception("page write failed; retrying one document at a time")
        out = ingest.PageOutcome()
        for r in results:
            one = session.begin_nested()
            try:
                o = ingest.apply_page(
                    session, [r], key=key, now=now, fetch=fetch, repeats_of=repeats_of, serialise=serialise
                )
                one.commit()
            except Exception as exc:  # noqa: BLE001
                one.rollback()
                o = ingest.PageOutcome(failed={str(r.get("id")): ingest.describe_failure(exc)})
            out.ingested += o.ingested
            out.deleted += o.deleted
            out.failed.update(o.failed)
            out.skipped += o.skipped
            out.rows += o.rows
    _quarantine(session, out.failed, seqs, now)
    return out


def mark_due(settings: Settings, session: Session, ids: list[str]) -> None:
    """Record, in the page's own transaction, that these submissions' indicator cells need a refresh (rule 8):
    a worker killed after the commit leaves them due, and the next run refreshes them."""
    if settings.ingest_hooks and ids:
        now = _now()
        ingest.upsert(session, RefreshDue, [{"submission_id": i, "due_at": now} for i in sorted(set(ids))])


def refresh_due(settings: Settings, session: Session, ids: list[str] | None = None, limit: int = 5000) -> int:
    """Refresh the indicator cells of due submissions (``ids``, or any due ones), then clear them; returns how
    many were refreshed. A failure (or a crash) leaves them due: the next follower run refreshes them."""
    if not settings.ingest_hooks:
        return 0
    q = select(RefreshDue.submission_id)
    if ids is not None:
        q = q.where(col(RefreshDue.submission_id).in_(ids))
    due = list(session.exec(q.order_by(col(RefreshDue.submission_id)).limit(limit)))
    if not due:
        return 0
    if settings.refresh_pause_s:
        log.warning(
            "refresh of %d submissions paused %.1f s (fault injection)", len(due), settings.refresh_pause_s
        )
        time.sleep(settings.refresh_pause_s)  # see Settings.refresh_pause_s
    try:
        hooks.after_page(session, due)  # commits the refreshed cells
        # then clears them: a crash in between refreshes them once more (refreshes are idempotent)
        session.execute(delete(RefreshDue).where(col(RefreshDue.submission_id).in_(due)))
        session.commit()
    except Exception:  # noqa: BLE001 - the rows are committed; their refresh stays due and is retried
        session.rollback()
        log.exception("indicator refresh failed; %d submissions stay due", len(due))
        return 0
    return len(due)


def _after_page(settings: Settings, session: Session, ids: list[str]) -> None:
    if ids:
        refresh_due(settings, session, ids)


def write_page(
    settings: Settings, couch: Couch, page: feed.Page, part: Part | None = None
) -> ingest.PageOutcome | None:
    """Commit one page read from the checkpoint ``page.since``: CAS the checkpoint, apply, commit.

    None when another worker moved the checkpoint first (nothing written).
    """
    name = checkpoint_name(settings, part)
    with Session(get_engine(settings)) as session:
        moved = session.execute(
            update(Checkpoint)
            .where(col(Checkpoint.name) == name, col(Checkpoint.seq) == page.since)
            .values(seq=page.last_seq, updated_at=_now())
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        out = ingest.PageOutcome()
        if page.results:
            serialise = part is not None and part.count > 1
            out = apply_changes(
                session, page.results, couch, settings.submissions_db, settings, serialise, page.mapped
            )
        mark_due(settings, session, out.touched)
        session.commit()
        _after_page(settings, session, out.touched)
    return out


def run_page(
    settings: Settings, couch: Couch, *, limit: int | None = None, part: Part | None = None
) -> tuple[int, ingest.PageOutcome | None, str]:
    """One page: read from the checkpoint, apply, CAS the checkpoint, commit. Returns (n, outcome, seq).

    ``n`` is the number of feed changes read; ``outcome`` is None when the page was empty or another worker
    moved the checkpoint first (nothing written).
    """
    part = part or feed.parts(settings)[0]
    with Session(get_engine(settings)) as session:
        old = read_checkpoint(session, checkpoint_name(settings, part))
    page = feed.read_page(couch, settings.submissions_db, old, _feed_limit(settings, limit, part), part)
    if not page.scanned:
        return 0, None, old
    out = write_page(settings, couch, page, part)
    return page.scanned, out, page.last_seq if out is not None else old


def _feed_limit(settings: Settings, limit: int | None, part: Part) -> int:
    """Feed changes scanned per page: a partition's page keeps about ``limit`` of them for itself."""
    return (limit or settings.ingest_page_size) * part.count


@contextmanager
def follower_lock(settings: Settings, part: Part | None = None) -> Iterator[bool]:
    """A non-blocking, crash-released lock on one partition of the feed (its lease: released by the server or
    the OS when the holder dies, even by SIGKILL). Yields False if another run holds it."""
    engine = get_engine(settings)
    name = checkpoint_name(settings, part)
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        with engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    db_path = Path(engine.url.database or str(settings.var_dir / "carecheck.db"))
    tag = settings.submissions_db + (f".{part.index}of{part.count}" if part and part.count > 1 else "")
    lock_path = db_path.with_name(db_path.name + f".{tag}.follow.lock")
    with lock_path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def follow(
    settings: Settings,
    *,
    budget_s: float = 10.0,
    limit: int | None = None,
    couch: Couch | None = None,
    until_caught_up: bool = True,
) -> FollowStats:
    """Drain the feed page by page until caught up (or ``budget_s`` seconds pass). Safe concurrently.

    With several partitions, a run takes whichever partitions no other run holds, starting at a random one
    (so concurrent runs on several workers spread over the partitions), and drains each in turn within the
    budget. A worker that dies releases its partitions at once; one that joins takes free partitions at its
    next run, and busy ones when their holder's budget ends: that is the rebalancing.
    """
    init_db(settings)
    stats = FollowStats()
    t0 = time.monotonic()
    own = couch is None
    couch = couch or Couch.from_settings(settings, timeout=60)
    all_parts = feed.parts(settings)
    start = random.randrange(len(all_parts))
    got_any = False
    try:
        for part in all_parts[start:] + all_parts[:start]:
            with follower_lock(settings, part) as got:
                if not got:
                    continue
                if not got_any:
                    with Session(get_engine(settings)) as session:
                        while refresh_due(settings, session):  # left due by a run killed after a commit
                            pass
                got_any = True
                _drain(settings, couch, part, stats, t0, budget_s, limit, until_caught_up)
            if time.monotonic() - t0 > budget_s:
                break
        stats.locked_out = not got_any
    finally:
        if own:
            couch.close()
        stats.seconds = round(time.monotonic() - t0, 3)
    return stats


def _drain(
    settings: Settings,
    couch: Couch,
    part: Part,
    stats: FollowStats,
    t0: float,
    budget_s: float,
    limit: int | None,
    until_caught_up: bool,
) -> None:
    """Pages of one partition (read one ahead) until it is caught up or the budget is spent."""
    feed_limit = _feed_limit(settings, limit, part)
    name = checkpoint_name(settings, part)
    key, repeats_of = pseudonym_key(settings), _repeats_of(settings)
    reader = feed.PageReader(
        settings,
        part,
        feed_limit,
        lambda results: ingest.map_page(results, key=key, now=_now(), repeats_of=repeats_of),
    )
    stats.caught_up = False
    try:
        with Session(get_engine(settings)) as session:
            seq = read_checkpoint(session, name)
        while True:
            page = reader.page(seq)
            stats.seq = seq
            if not page.scanned:
                stats.caught_up = True
                return
            out = write_page(settings, couch, page, part)
            if out is None:  # another run moved the checkpoint: start again where it stands
                stats.lost_races += 1
                with Session(get_engine(settings)) as session:
                    seq = read_checkpoint(session, name)
            else:
                seq = stats.seq = page.last_seq
                stats.pages += 1
                stats.changes += len(page.results)
                stats.ingested += len(out.ingested)
                stats.deleted += len(out.deleted)
                stats.quarantined += len(out.failed)
                stats.rows += out.rows
            if page.scanned < feed_limit and until_caught_up:
                stats.caught_up = True
                return
            if time.monotonic() - t0 > budget_s:
                return
    finally:
        reader.close()


def heartbeat(settings: Settings, name: str) -> None:
    """Record that worker ``name`` is alive (one upsert; read by ``carecheck status``)."""
    from aggregator.models import WorkerHeartbeat

    init_db(settings)
    with Session(get_engine(settings)) as session:
        ingest.upsert(session, WorkerHeartbeat, [{"name": name, "seen_at": _now()}])
        session.commit()


def retry_quarantine(
    settings: Settings, *, max_docs: int = 100, couch: Couch | None = None, ids: list[str] | None = None
) -> dict[str, int]:
    """Re-process quarantined documents whose back-off has expired (latest version fetched from CouchDB);
    ``ids``: these documents now, whatever their back-off (an officer's retry in the web console)."""
    init_db(settings)
    engine = get_engine(settings)
    own = couch is None
    couch = couch or Couch.from_settings(settings, timeout=60)
    done = failed = gone = 0
    try:
        with Session(engine) as session:
            when = col(Quarantine.submission_id).in_(ids) if ids is not None else (
                col(Quarantine.next_attempt_at) <= _now()
            )
            due = list(
                session.exec(
                    select(Quarantine)
                    .where(when)
                    .order_by(col(Quarantine.next_attempt_at))
                    .limit(max_docs)
                )
            )
            todo = [(q.submission_id, q.seq) for q in due]
        for doc_id, seq in todo:
            doc = couch.get(settings.submissions_db, doc_id)
            change = (
                {"id": doc_id, "seq": seq, "deleted": True, "doc": {"_id": doc_id, "_deleted": True}}
                if doc is None
                else {"id": doc_id, "seq": seq, "doc": doc}
            )
            with Session(engine) as session:
                out = apply_changes(session, [change], couch, settings.submissions_db, settings)
                if doc is None:
                    q = session.get(Quarantine, doc_id)
                    if q is not None:
                        session.delete(q)
                    gone += 1
                elif out.failed:
                    failed += 1
                else:
                    done += 1
                mark_due(settings, session, out.touched)
                session.commit()
                _after_page(settings, session, out.touched)
    finally:
        if own:
            couch.close()
    return {"retried": len(todo), "ingested": done, "still_failing": failed, "gone": gone}


def apply_duplicate_decision(
    settings: Settings, conflict_id: str, decision: str, by: str, keep: str | None = None
) -> dict[str, Any]:
    """An officer's decision on a registry conflict (same child / different children); indicators
    refreshed."""
    from aggregator import decisions
    from aggregator.models import ChildObservation, RegistryConflict

    init_db(settings)
    with Session(get_engine(settings)) as session:
        conflict = session.get(RegistryConflict, conflict_id)
        pair = [conflict.child_id_a, conflict.child_id_b] if conflict else []
        decisions.decide_duplicate(session, conflict_id, decision, by, keep)
        session.commit()
        ids = sorted(
            set(
                session.exec(
                    select(ChildObservation.submission_id).where(col(ChildObservation.child_id).in_(pair))
                )
            )
        )
        _after_page(settings, session, ids)
        session.commit()
    return {"conflict": conflict_id, "decision": decision, "submissions": len(ids)}
