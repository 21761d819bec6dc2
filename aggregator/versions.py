"""Which version of a record counts (rule 1) and which visit is the latest (rule 2): the two orderings.

Written once here and called by ingestion (``aggregator.ingest.write``), ``carecheck conflicts``
(``edge.conflicts``), ``carecheck conflicts choose``, the registry and the rollup's window ordering
(``aggregator.rollup.cells``). Pure functions and SQL fragments only, so a rework of the ingestion keeps them
(docs/contracts.md §9).

**Rule 1 — one current version per record.** A record is an original submission and every edit made of it
(``deprecated_id`` chains). When the record was edited in two places (two edits naming one ``deprecated_id``,
or chains that fork) it has several *heads* (versions nothing newer replaces). Exactly one head counts: an
officer's choice if one is recorded (``VersionChoice``) and still names a head, else the latest form end time,
then the later ``received_at``, then the greater instanceID. The others stay stored (``RawSubmission.lost_to``
names the winner).

**Rule 2 — latest visit** of a child, a household or a health station in a period: the latest visit date, then
the latest form end time, then the later ``received_at``, then the greater instanceID (the submission id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(t: datetime | None) -> datetime:
    if t is None:
        return EPOCH
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Candidate:
    """One version of a record: its instanceID, form end time and receipt time (UTC; None when unknown)."""

    id: str
    end: datetime | None = None
    received_at: datetime | None = None

    def rank(self) -> tuple[datetime, datetime, str]:
        """Rule 1's order, ascending: the greatest rank wins. Unknown times rank lowest."""
        return (_aware(self.end), _aware(self.received_at), self.id)


def winner(candidates: Iterable[Candidate], chosen: str | None = None) -> Candidate:
    """The version that counts among competing heads: ``chosen`` (an officer's pick) when it is one of them,
    else the latest end time, then the later received_at, then the greater instanceID."""
    cands = list(candidates)
    if not cands:
        raise ValueError("winner() of no versions")
    for c in cands:
        if chosen is not None and c.id == chosen:
            return c
    return max(cands, key=Candidate.rank)


def ranked(candidates: Iterable[Candidate], chosen: str | None = None) -> list[Candidate]:
    """Every version, the one that counts first, then the others by rule 1 (for listings)."""
    cands = list(candidates)
    if not cands:
        return []
    w = winner(cands, chosen)
    return [w, *sorted((c for c in cands if c.id != w.id), key=Candidate.rank, reverse=True)]


@dataclass(frozen=True)
class Node:
    """A stored version as the settlement sees it (``RawSubmission`` columns)."""

    id: str
    deprecated_id: str | None
    deleted: bool
    end: datetime | None
    received_at: datetime | None


@dataclass(frozen=True)
class Settled:
    """The state rule 1 gives one stored version."""

    record: str  # the original instanceID the versions descend from
    superseded: bool  # a newer (not deleted) edit replaces it
    lost_to: str | None  # a head that is not the winner: the winner's id
    live: bool  # its rows count (the winning head)


def record_of(node_id: str, parent: Mapping[str, str | None]) -> str:
    """The original instanceID of a version: follow ``deprecated_id`` up as far as it goes (cycle-safe)."""
    seen = {node_id}
    cur = node_id
    while (up := parent.get(cur)) and up not in seen:
        seen.add(up)
        cur = up
    return cur


def settle(nodes: Iterable[Node], choices: Mapping[str, str] | None = None) -> dict[str, Settled]:
    """Rule 1 over every stored version of some records (whole records: every node naming or named by another
    is present): which are superseded, which heads lost, and the one live version per record."""
    by_id = {n.id: n for n in nodes}
    parent = {n.id: n.deprecated_id for n in by_id.values()}
    replaced = {n.deprecated_id for n in by_id.values() if n.deprecated_id and not n.deleted}
    records: dict[str, list[Node]] = {}
    for n in by_id.values():
        records.setdefault(record_of(n.id, parent), []).append(n)
    out: dict[str, Settled] = {}
    for record, members in records.items():
        heads = [n for n in members if not n.deleted and n.id not in replaced]
        w = (
            winner([Candidate(n.id, n.end, n.received_at) for n in heads], (choices or {}).get(record))
            if heads
            else None
        )
        for n in members:
            is_head = not n.deleted and n.id not in replaced
            out[n.id] = Settled(
                record=record,
                superseded=n.id in replaced,
                lost_to=w.id if is_head and w is not None and n.id != w.id else None,
                live=is_head and w is not None and n.id == w.id,
            )
    return out


# ---------------------------------------------------------------- rule 2: the latest visit
@dataclass(frozen=True)
class Visit:
    id: str
    visit_date: date | None
    end: datetime | None = None
    received_at: datetime | None = None

    def rank(self) -> tuple[date, datetime, datetime, str]:
        return (self.visit_date or date.min, _aware(self.end), _aware(self.received_at), self.id)


def latest_visit(visits: Iterable[Visit]) -> Visit:
    """Rule 2 in Python (the registry's last_seen, checks): the greatest rank."""
    return max(visits, key=Visit.rank)


def visit_order(
    visit_date: Any, end_time: Any, received_at: Any, unit_id: Any, *, descending: bool = False
) -> list[Any]:
    """Rule 2 as an ORDER BY: visit date, form end time, received_at, then the row's id — ascending (the
    latest last) or descending (the latest first). Unknown values rank lowest on every database (PostgreSQL
    sorts NULLs last by default, SQLite first)."""
    cols = [visit_date, end_time, received_at, unit_id]
    if descending:
        return [c.desc().nulls_last() for c in cols]
    return [c.asc().nulls_first() for c in cols]


def visit_order_of(t: FromClause, *, descending: bool = False) -> list[Any]:
    """:func:`visit_order` over a derived table (Household, ChildObservation, FacilityCheck)."""
    pk: ColumnElement[Any] = list(t.primary_key)[0]
    return visit_order(t.c.visit_date, t.c.end_time, t.c.received_at, pk, descending=descending)


__all__ = [
    "Candidate",
    "Node",
    "Settled",
    "Visit",
    "latest_visit",
    "ranked",
    "record_of",
    "settle",
    "visit_order",
    "visit_order_of",
    "winner",
]
