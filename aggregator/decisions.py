"""Officers' data-quality decisions that ingestion applies: registry duplicates and competing edits.

- **Registry duplicate, same child**: the visits of ``child_merged`` are re-linked to ``child_kept`` now, the
  merged registry row goes, and every later page maps a visit matched to ``child_merged`` onto
  ``child_kept`` (``aliases``), so a replay under the same pseudonym key gives the same answer.
- **Registry duplicate, different children**: the conflict is closed (the registry never reopens a conflict
  id it already holds).
- **Competing edits** (two or more edits naming one ``deprecated_id``): the chosen one counts, the others
  are superseded — their rows go, their documents stay stored and listed (``losing_edits`` keeps it so on
  later pages and replays).

Decisions are rows (``RegistryDecision``, ``EditChoice``); the console records who decided in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from aggregator.models import (
    Child,
    ChildObservation,
    EditChoice,
    FacilityCheck,
    Household,
    QualityFlag,
    RawSubmission,
    RegistryConflict,
    RegistryDecision,
)
from core.errors import BadRequest, NotFound


def aliases(session: Session, child_ids: Iterable[str]) -> dict[str, str]:
    """merged child id → kept child id, for those of ``child_ids`` an officer merged (followed to the end)."""
    ids = set(child_ids)
    if not ids:
        return {}
    rows = session.exec(select(RegistryDecision).where(col(RegistryDecision.decision) == "same")).all()
    step = {r.child_merged: r.child_kept for r in rows if r.child_merged}
    out = {}
    for cid in ids & set(step):
        seen, cur = {cid}, step[cid]
        while cur in step and step[cur] not in seen:
            seen.add(cur)
            cur = step[cur]
        out[cid] = cur
    return out


def decide_duplicate(
    session: Session, conflict_id: str, decision: str, by: str, keep: str | None = None
) -> None:
    """Record and apply an officer's decision on a registry conflict (not committed)."""
    if decision not in ("same", "different"):
        raise BadRequest(
            "Quyết định không hợp lệ.", "Unknown decision (same | different).", code="form_invalid"
        )
    conflict = session.get(RegistryConflict, conflict_id)
    if conflict is None:
        raise NotFound("Không có xung đột này.", "No such registry conflict.")
    pair = (conflict.child_id_a, conflict.child_id_b)
    kept = keep if keep in pair else conflict.child_id_a
    merged = pair[1] if kept == pair[0] else pair[0]
    now = datetime.now(UTC)
    row = RegistryDecision(
        conflict_id=conflict_id,
        decision=decision,
        child_kept=kept,
        child_merged=merged if decision == "same" else None,
        decided_by=by,
        decided_at=now,
    )
    session.merge(row)
    conflict.resolved = True
    session.add(conflict)
    if decision == "same" and merged != kept:
        session.execute(
            update(ChildObservation).where(col(ChildObservation.child_id) == merged).values(child_id=kept)
        )
        session.execute(delete(Child).where(col(Child.id) == merged))


def losing_edits(session: Session, records: Iterable[str]) -> dict[str, str]:
    """record (a deprecated_id) → the edit an officer chose for it, for those of ``records`` with a choice."""
    ids = list(set(records))
    if not ids:
        return {}
    rows = session.exec(select(EditChoice).where(col(EditChoice.record).in_(ids))).all()
    return {r.record: r.chosen_id for r in rows}


def competing_edits(session: Session, records: Iterable[str] | None = None) -> dict[str, list[RawSubmission]]:
    """record → its edits (not deleted), for records edited more than once."""
    q = select(RawSubmission).where(
        col(RawSubmission.deprecated_id).is_not(None), col(RawSubmission.deleted).is_(False)
    )
    if records is not None:
        q = q.where(col(RawSubmission.deprecated_id).in_(list(records)))
    groups: dict[str, list[RawSubmission]] = {}
    for r in session.exec(q):
        groups.setdefault(str(r.deprecated_id), []).append(r)
    return {k: sorted(v, key=lambda r: r.id) for k, v in groups.items() if len(v) > 1}


def choose_edit(session: Session, record: str, chosen_id: str, by: str) -> list[str]:
    """Record the choice and supersede the other edits (their rows go). Returns the ids whose rows must be
    (re)built from their documents: the chosen edit when it was superseded before (not committed)."""
    edits = competing_edits(session, [record]).get(record)
    if not edits or chosen_id not in {e.id for e in edits}:
        raise NotFound("Không có bản sửa này của phiếu.", "No such edit of this record.")
    session.merge(EditChoice(record=record, chosen_id=chosen_id, decided_by=by, decided_at=datetime.now(UTC)))
    losers = [e.id for e in edits if e.id != chosen_id]
    for model in (Household, FacilityCheck, ChildObservation, QualityFlag):
        session.execute(delete(model).where(col(model.submission_id).in_(losers)))  # type: ignore[attr-defined]
    session.execute(update(RawSubmission).where(col(RawSubmission.id).in_(losers)).values(superseded=True))
    chosen = next(e for e in edits if e.id == chosen_id)
    return [chosen_id] if chosen.superseded else []
