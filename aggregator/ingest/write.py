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

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col

from aggregator.ingest.rows import (
    DERIVED,
    BadSubmission,
    Doc,
    DocRows,
    RepeatsOf,
    build_rows,
    default_repeats,
)
from aggregator.models import (
    Child,
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
    Quarantine,
    RawSubmission,
    RegistryConflict,
)
from aggregator.registry import (
    Registry,
)


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
    """INSERT … ON CONFLICT (primary key) DO UPDATE, on PostgreSQL or SQLite."""
    if not rows:
        return
    table = model.__table__  # type: ignore[attr-defined]
    ins = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)
    pk = [c.name for c in table.primary_key.columns]
    stmt = ins.on_conflict_do_update(
        index_elements=pk, set_={c.name: ins.excluded[c.name] for c in table.columns if c.name not in pk}
    )
    session.execute(stmt, rows)


def _insert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(model.__table__.insert(), rows)  # type: ignore[attr-defined]


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
            for c in session.execute(select(obs.c.child_id).where(obs.c.submission_id.in_(chunk))).scalars()
            if c
        )
        for model in DERIVED:
            session.execute(delete(model).where(model.submission_id.in_(chunk)))  # type: ignore[attr-defined]


def apply_page(
    session: Session,
    changes: list[Doc],
    *,
    key: bytes,
    now: datetime | None = None,
    fetch: Callable[[str], Doc | None] | None = None,
    repeats_of: RepeatsOf = default_repeats,
) -> PageOutcome:
    """Apply changes (``{"id", "seq", "deleted"?, "doc"}``) to the session without committing.

    ``key`` is the pseudonym key (core.secrets.pseudonym_key); every process writing one database must use the
    same key, or the registry's links between visits break.
    """
    now = now or datetime.now(UTC)
    out = PageOutcome()
    built: list[DocRows] = []
    deleted_ids: list[str] = []
    for ch in changes:
        doc = ch.get("doc") or {}
        doc_id = str(ch.get("id") or doc.get("_id"))
        if ch.get("deleted") or doc.get("_deleted"):
            deleted_ids.append(doc_id)
            continue
        if doc_id.startswith("_design/") or doc.get("type") != "submission":
            out.skipped += 1
            continue
        try:
            built.append(build_rows(doc, now, repeats_of, key=key))
        except Exception as exc:  # noqa: BLE001 - any failure of one document must not block the feed
            out.failed[doc_id] = describe_failure(exc)

    # Deletions: rows go, the raw row stays marked deleted; an edit's deletion brings its original back.
    restore: set[str] = set()
    touched_children: set[str] = set()
    if deleted_ids:
        _delete_derived(session, deleted_ids, touched_children)
        for chunk in _chunks(deleted_ids):
            for rid, dep in session.execute(
                select(col(RawSubmission.id), col(RawSubmission.deprecated_id)).where(
                    col(RawSubmission.id).in_(chunk)
                )
            ):
                out.deleted.append(rid)
                if dep:
                    restore.add(dep)
            session.execute(
                update(RawSubmission)
                .where(col(RawSubmission.id).in_(chunk))
                .values(deleted=True, superseded=False)
            )
            session.execute(delete(Quarantine).where(col(Quarantine.submission_id).in_(chunk)))
    page_ids = {r.doc_id for r in built}
    for rid in sorted(restore - page_ids):
        doc = fetch(rid) if fetch else None
        if doc and doc.get("type") == "submission":
            try:
                built.append(build_rows(doc, now, repeats_of, key=key))
                page_ids.add(rid)
            except Exception as exc:  # noqa: BLE001
                out.failed[rid] = describe_failure(exc)

    # Which of these documents are superseded (by an edit in this page or already landed), and which earlier
    # documents this page's edits supersede.
    targets = {r.deprecated_id for r in built if r.deprecated_id}
    superseded = targets & page_ids
    for chunk in _chunks(page_ids):
        superseded |= set(
            session.execute(
                select(col(RawSubmission.deprecated_id)).where(
                    col(RawSubmission.deprecated_id).in_(chunk),
                    col(RawSubmission.deleted).is_(False),
                )
            ).scalars()
        )
    if targets:
        _delete_derived(session, targets, touched_children)
        for chunk in _chunks(targets):
            session.execute(
                update(RawSubmission).where(col(RawSubmission.id).in_(chunk)).values(superseded=True)
            )
    _delete_derived(session, page_ids, touched_children)

    current = [r for r in built if r.doc_id not in superseded]
    registry = Registry(session, key)
    registry.preload(rec for r in current for _, rec in r.children)
    for r in current:
        for obs, rec in r.children:
            obs["child_id"] = registry.match(rec)
    session.flush()
    registry.flush_conflicts()

    raws = []
    for r in built:
        raws.append({**r.raw, "superseded": r.doc_id in superseded})
    upsert(session, RawSubmission, raws)
    households = [r.household for r in current if r.household]
    facilities = [r.facility for r in current if r.facility]
    observations = [obs for r in current for obs, _ in r.children]
    flags = [f for r in current for f in r.flags]
    _insert(session, Household, households)
    _insert(session, FacilityCheck, facilities)
    _insert(session, ChildObservation, observations)
    _insert(session, QualityFlag, flags)
    for chunk in _chunks(page_ids):
        session.execute(delete(Quarantine).where(col(Quarantine.submission_id).in_(chunk)))
    _prune_orphans(session, touched_children)
    out.ingested = sorted(page_ids)
    out.rows = len(raws) + len(households) + len(facilities) + len(observations)
    return out


def _prune_orphans(session: Session, child_ids: set[str]) -> None:
    """Registry children left without any observation (their only visit was edited away or deleted) go, and
    so do the conflicts naming them (moot; a replay under a new pseudonym key re-creates the live ones)."""
    child, obs = Child.__table__, ChildObservation.__table__  # type: ignore[attr-defined]
    conflict = RegistryConflict.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(child_ids):
        orphan = ~exists().where(obs.c.child_id == child.c.id)
        session.execute(delete(child).where(child.c.id.in_(chunk), orphan))
        for side in (conflict.c.child_id_a, conflict.c.child_id_b):
            gone = ~exists().where(child.c.id == side)
            session.execute(delete(conflict).where(side.in_(chunk), gone))


def describe_failure(exc: Exception) -> str:
    if isinstance(exc, BadSubmission):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {tb[0].filename.rsplit('/', 1)[-1]}:{tb[0].lineno}" if tb else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"
