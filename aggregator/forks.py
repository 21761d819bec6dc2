"""Records edited in two places, as the console lists them: their heads, the one that counts (rule 1,
``aggregator.versions``) and an officer's pick (``aggregator.choices``)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from aggregator import versions
from aggregator.choices import heads, stored_choices
from aggregator.models import RawSubmission


def competing_versions(session: Session) -> list[dict[str, Any]]:
    """Records with more than one head (edited in two places): ``{record, heads, counts, chosen}``, where
    ``heads`` are RawSubmission rows, ``counts`` the instanceID that counts (rule 1) and ``chosen`` an
    officer's recorded pick (or None)."""
    losers = session.exec(select(RawSubmission).where(col(RawSubmission.lost_to).is_not(None))).all()
    if not losers:
        return []
    parent: dict[str, str | None] = {}
    frontier = {r.id for r in losers}
    while frontier:
        rows = session.exec(select(RawSubmission).where(col(RawSubmission.id).in_(frontier))).all()
        for r in rows:
            parent[r.id] = r.deprecated_id
        frontier = {r.deprecated_id for r in rows if r.deprecated_id and r.deprecated_id not in parent}
    chosen = stored_choices(session)
    out = []
    for record in sorted({versions.record_of(r.id, parent) for r in losers}):
        found = heads(session, record)
        counting = [h.id for h in found if h.lost_to is None]
        out.append(
            {
                "record": record,
                "heads": found,
                "counts": counting[0] if counting else None,
                "chosen": chosen.get(record),
            }
        )
    return out
