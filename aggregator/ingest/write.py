"""Rows → SQL: ``apply_page`` writes one page of the changes feed into an open session.

The follower owns the transaction and the checkpoint. Every write is an upsert keyed on the CouchDB ``_id``:
derived rows of a page's documents are deleted and re-inserted, the raw row is an INSERT … ON CONFLICT UPDATE,
so applying a page twice is harmless. Edits (``deprecated_id``) supersede the original, whichever arrives
first; deletions remove a document's rows. A document that cannot be turned into rows is returned as a failure
(the follower quarantines it).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, or_, select, text, union, update
from sqlmodel import Session, SQLModel, col

from aggregator import decisions, versions
from aggregator.ingest.bulk import insert_rows, one_of, upsert_rows
from aggregator.ingest.rows import (
    DERIVED,
    BadSubmission,
    Doc,
    DocRows,
    RepeatsOf,
    build_rows,
    default_repeats,
)
from aggregator.locks import WRITE_LOCK
from aggregator.models import (
    Child,
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
    Quarantine,
    RawSubmission,
    RegistryConflict,
    VersionChoice,
)
from aggregator.registry import Registry, settle_latest


@dataclass
class PageOutcome:
    ingested: list[str] = field(default_factory=list)  # landed (current or superseded)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id → error (to quarantine)
    skipped: int = 0  # design docs, non-submissions
    rows: int = 0  # SQL rows written (raw + derived)

    @property
    def touched(self) -> list[str]:
        return self.ingested + self.deleted


def upsert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT (primary key) DO UPDATE, on PostgreSQL or SQLite (set-based: ``bulk``)."""
    upsert_rows(session, model, rows)


def _insert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    insert_rows(session, model, rows)


def _chunks(ids: Iterable[str], n: int = 500) -> Iterable[list[str]]:
    ids = sorted(set(ids))
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def _delete_derived(session: Session, ids: Iterable[str], children: set[str]) -> None:
    """Delete the rows derived from these submissions; collect the registry children they referred to."""
    obs = ChildObservation.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(ids):
        children.update(
            c
            for c in session.execute(
                select(obs.c.child_id).where(one_of(session, obs.c.submission_id, chunk))
            ).scalars()
            if c
        )
        for model in DERIVED:
            sub = model.submission_id  # type: ignore[attr-defined]
            session.execute(delete(model).where(one_of(session, sub, chunk)))


@dataclass
class MappedPage:
    """A page's documents mapped to rows (no database access): what ``apply_page`` then writes."""

    built: list[DocRows] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id → error (to quarantine)
    skipped: int = 0  # design docs, non-submissions


def map_page(changes: list[Doc], *, key: bytes, now: datetime, repeats_of: RepeatsOf) -> MappedPage:
    """Every document of a page through ``build_rows``; a document that fails is recorded, never raised."""
    out = MappedPage()
    for ch in changes:
        doc = ch.get("doc") or {}
        doc_id = str(ch.get("id") or doc.get("_id"))
        if ch.get("deleted") or doc.get("_deleted"):
            out.deleted_ids.append(doc_id)
            continue
        if doc_id.startswith("_design/") or doc.get("type") != "submission":
            out.skipped += 1
            continue
        try:
            out.built.append(build_rows(doc, now, repeats_of, key=key))
        except Exception as exc:  # noqa: BLE001 - any failure of one document must not block the feed
            out.failed[doc_id] = describe_failure(exc)
    return out


def apply_page(
    session: Session,
    changes: list[Doc],
    *,
    key: bytes,
    now: datetime | None = None,
    fetch: Callable[[str], Doc | None] | None = None,
    repeats_of: RepeatsOf = default_repeats,
    serialise: bool = False,
    mapped: MappedPage | None = None,
) -> PageOutcome:
    """Apply changes (``{"id", "seq", "deleted"?, "doc"}``) to the session without committing.

    ``key`` is the pseudonym key (core.secrets.pseudonym_key); every process writing one database must use the
    same key, or the registry's links between visits break.

    ``serialise``: wait for the other writers of the database (partitions of the feed, on PostgreSQL) after
    the documents are mapped and before the first write, so pages of several partitions are mapped at once
    but written one at a time: edits, deletions and registry matches that span partitions then see each
    other's rows exactly as in one feed (an order of whole pages), and no two writers deadlock.

    ``mapped``: these changes already mapped by ``map_page`` (the follower maps the next page while this one
    is written).
    """
    now = now or datetime.now(UTC)
    m = mapped or map_page(changes, key=key, now=now, repeats_of=repeats_of)
    out = PageOutcome(failed=dict(m.failed), skipped=m.skipped)
    built, deleted_ids = list(m.built), list(m.deleted_ids)

    if session.get_bind().dialect.name == "postgresql":
        # Every lookup below is a page's keys (ids, household keys, pseudonyms) in tables that grow without
        # bound: index scans, whatever the statistics say. Without them (autovacuum off, as in CI, or trailing
        # a replay into fresh tables) or at the default random_page_cost, PostgreSQL plans IN lists of a few
        # hundred keys as sequential scans, whose cost per page grows with the tables. No JIT: the disabled
        # scans' nominal cost (of the staging tables, which have no index) would trigger it, at ~0.1 s a
        # statement. This transaction only.
        session.execute(text("SET LOCAL enable_seqscan = off; SET LOCAL jit = off"))
        # partitions write one at a time; one writer shares the lock with others, until a full indicator
        # build takes it (aggregator.locks.WRITE_LOCK: the page then waits here, before its first write)
        lock = "pg_advisory_xact_lock" if serialise else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {lock}(:k)"), {"k": WRITE_LOCK})
    # Deletions: rows go, the raw row stays marked deleted (rule 1 below brings back what an edit replaced).
    touched_children: set[str] = set()
    if deleted_ids:
        _delete_derived(session, deleted_ids, touched_children)
        for chunk in _chunks(deleted_ids):
            out.deleted += list(
                session.execute(
                    select(col(RawSubmission.id)).where(one_of(session, col(RawSubmission.id), chunk))
                ).scalars()
            )
            session.execute(
                update(RawSubmission)
                .where(one_of(session, col(RawSubmission.id), chunk))
                .values(deleted=True, superseded=False, lost_to=None)
            )
            session.execute(delete(Quarantine).where(one_of(session, col(Quarantine.submission_id), chunk)))
    page_ids = {r.doc_id for r in built}
    by_id = {r.doc_id: r for r in built}
    # The page's documents land first (flags settled next), so that the records they belong to are whole.
    # Documents with no row stored yet (most of a feed) are plain inserts (one COPY) with nothing to delete;
    # the others are upserted and their derived rows replaced.
    stored = _stored(session, page_ids)
    raw = [{**r.raw, "superseded": False, "lost_to": None} for r in built]
    _insert(session, RawSubmission, [r for r in raw if r["id"] not in stored])
    upsert(session, RawSubmission, [r for r in raw if r["id"] in stored])
    _delete_derived(session, stored, touched_children)

    # Rule 1 (aggregator.versions): every record these documents belong to, settled as a whole — which
    # versions are superseded, which heads lost, and the one whose rows count.
    nodes, flags_now = _records(session, page_ids | set(deleted_ids))
    was_live = {n.id: not n.deleted and flags_now[n.id] == (False, None) for n in nodes}
    state = versions.settle(nodes, _choices(session, nodes))
    live: list[DocRows] = []
    changed: list[dict[str, Any]] = []
    for node in nodes:
        st = state[node.id]
        if node.id not in page_ids and was_live.get(node.id) and not st.live:
            _delete_derived(session, [node.id], touched_children)  # an edit or another head won
        if st.live:
            if node.id in by_id:
                live.append(by_id[node.id])
            elif not was_live.get(node.id):  # it counts again (an edit deleted, an officer's choice)
                doc = fetch(node.id) if fetch else None
                if doc and doc.get("type") == "submission" and not doc.get("_deleted"):
                    try:
                        live.append(build_rows(doc, now, repeats_of, key=key))
                    except Exception as exc:  # noqa: BLE001
                        out.failed[node.id] = describe_failure(exc)
        if (st.superseded, st.lost_to) != flags_now[node.id]:
            changed.append({"b_id": node.id, "b_superseded": st.superseded, "b_lost_to": st.lost_to})
    if changed:
        raw = RawSubmission.__table__  # type: ignore[attr-defined]
        session.execute(
            update(raw)
            .where(raw.c.id == bindparam("b_id"))
            .values(superseded=bindparam("b_superseded"), lost_to=bindparam("b_lost_to")),
            changed,
        )

    registry = Registry(session, key)
    registry.preload(rec for r in live for _, rec in r.children)
    for r in live:
        for obs, rec in r.children:
            obs["child_id"] = registry.match(rec)
    registry.flush()
    # Registry duplicates an officer decided are the same child: visits go to the child kept.
    merged = decisions.aliases(session, {obs["child_id"] for r in live for obs, _ in r.children})
    if merged:
        for r in live:
            for obs, _ in r.children:
                obs["child_id"] = merged.get(obs["child_id"], obs["child_id"])
        touched_children |= set(merged)

    order = [{"end_time": r.raw.get("end_time"), "received_at": r.raw.get("received_at")} for r in live]
    households = [{**r.household, **o} for r, o in zip(live, order, strict=True) if r.household]
    facilities = [{**r.facility, **o} for r, o in zip(live, order, strict=True) if r.facility]
    observations = [{**obs, **o} for r, o in zip(live, order, strict=True) for obs, _ in r.children]
    flags = [f for r in live for f in r.flags]
    _insert(session, Household, households)
    _insert(session, FacilityCheck, facilities)
    _insert(session, ChildObservation, observations)
    _insert(session, QualityFlag, flags)
    for chunk in _chunks(page_ids):
        session.execute(delete(Quarantine).where(one_of(session, col(Quarantine.submission_id), chunk)))
    matched = {obs["child_id"] for obs in observations if obs.get("child_id")}
    _prune_orphans(session, touched_children)
    settle_latest(session, matched | touched_children)  # rule 2 for the registry's last visit
    # every document whose rows changed: the page's, and the versions that started or stopped counting
    stopped = {n.id for n in nodes if was_live.get(n.id) and not state[n.id].live}
    out.ingested = sorted(page_ids | {r.doc_id for r in live} | stopped)
    out.rows = len(built) + len(households) + len(facilities) + len(observations)
    return out


def _stored(session: Session, ids: set[str]) -> set[str]:
    """Those of ``ids`` with any row stored (raw or derived), in one statement per chunk."""
    out: set[str] = set()
    for chunk in _chunks(ids):
        keys: list[Any] = [RawSubmission.__table__.c.id]  # type: ignore[attr-defined]
        keys += [m.__table__.c.submission_id for m in DERIVED]  # type: ignore[attr-defined, union-attr]
        parts = [select(k).where(one_of(session, k, chunk)) for k in keys]
        out.update(session.execute(union(*parts)).scalars())
    return out


def _records(
    session: Session, ids: set[str]
) -> tuple[list[versions.Node], dict[str, tuple[bool, str | None]]]:
    """Every stored version of the records these ids belong to (following ``deprecated_id`` both ways until
    closed), and each one's stored (superseded, lost_to)."""
    t = RawSubmission.__table__  # type: ignore[attr-defined]
    cols = (
        t.c.id,
        t.c.deprecated_id,
        t.c.deleted,
        t.c.end_time,
        t.c.received_at,
        t.c.superseded,
        t.c.lost_to,
    )
    rows: dict[str, Any] = {}
    queried: set[str] = set()
    frontier = set(ids)
    while frontier:
        queried |= frontier
        found = []
        for chunk in _chunks(frontier):
            found += list(
                session.execute(
                    select(*cols).where(
                        or_(one_of(session, t.c.id, chunk), one_of(session, t.c.deprecated_id, chunk))
                    )
                )
            )
        frontier = set()
        for r in found:
            rows.setdefault(r.id, r)
            frontier |= {x for x in (r.id, r.deprecated_id) if x and x not in queried}
    nodes = [
        versions.Node(r.id, r.deprecated_id, bool(r.deleted), r.end_time, r.received_at)
        for r in rows.values()
    ]
    return nodes, {r.id: (bool(r.superseded), r.lost_to) for r in rows.values()}


def _choices(session: Session, nodes: list[versions.Node]) -> dict[str, str]:
    """The officers' picks (``VersionChoice``) for the records of these versions: record → instanceID."""
    parent = {n.id: n.deprecated_id for n in nodes}
    records = {versions.record_of(n.id, parent) for n in nodes}
    out: dict[str, str] = {}
    for chunk in _chunks(records):
        for rec, iid in session.execute(
            select(col(VersionChoice.record), col(VersionChoice.instance_id)).where(
                one_of(session, col(VersionChoice.record), chunk)
            )
        ):
            out[rec] = iid
    return out


def _prune_orphans(session: Session, child_ids: set[str]) -> None:
    """Registry children left without any observation (their only visit was edited away or deleted) go, and
    so do the conflicts naming them (moot; a replay under a new pseudonym key re-creates the live ones)."""
    child, obs = Child.__table__, ChildObservation.__table__  # type: ignore[attr-defined]
    conflict = RegistryConflict.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(child_ids):
        orphan = ~exists().where(obs.c.child_id == child.c.id)
        session.execute(delete(child).where(one_of(session, child.c.id, chunk), orphan))
        for side in (conflict.c.child_id_a, conflict.c.child_id_b):
            gone = ~exists().where(child.c.id == side)
            session.execute(delete(conflict).where(one_of(session, side, chunk), gone))


def describe_failure(exc: Exception) -> str:
    if isinstance(exc, BadSubmission):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {tb[0].filename.rsplit('/', 1)[-1]}:{tb[0].lineno}" if tb else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"
