"""Officers' registry-duplicate decisions that ingestion applies (competing edits: aggregator.choices).

- **Registry duplicate, same child**: the visits of ``child_merged`` are re-linked to ``child_kept`` now, the
  merged registry row goes, and every later page maps a visit matched to ``child_merged`` onto
  ``child_kept`` (``aliases``), so a replay under the same pseudonym key gives the same answer.
- **Registry duplicate, different children**: the conflict is closed (the registry never reopens a conflict
  id it already holds).
- **Competing edits**: rule 1 (``aggregator.versions``) decides which head counts, an officer's pick is
  ``aggregator.choices.choose_version``; ``aggregator.forks.competing_versions`` lists them for the console.

Decisions are rows (``RegistryDecision``, ``VersionChoice``); the console records who decided in the audit
log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from aggregator.models import (
    Child,
    ChildObservation,
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
