"""An officer picks the version of a record that counts (rule 1, ``aggregator.versions``): recorded, applied.

``choose_version`` is the library function behind ``carecheck conflicts choose`` and the console's "choose
another" button: it checks that the instanceID is a current head of that record, stores the choice
(``VersionChoice``), re-applies the record through ingestion in the same transaction (the chosen version's
rows count, the others' go) with its indicator refresh recorded as due (rule 8), commits, then refreshes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from aggregator import follower, ingest, versions
from aggregator.db import init_db
from aggregator.models import RawSubmission, VersionChoice
from core.couch import Couch
from core.errors import BadRequest, NotFound
from core.settings import Settings


def stored_choices(session: Session) -> dict[str, str]:
    """Every recorded choice: record (original instanceID) → the instanceID that counts."""
    return {c.record: c.instance_id for c in session.exec(select(VersionChoice))}


def heads(session: Session, record: str) -> list[RawSubmission]:
    """The versions of ``record`` that nothing newer replaces (one, unless it was edited in two places)."""
    rows: dict[str, RawSubmission] = {}
    frontier = {record}
    while frontier:
        found = list(
            session.exec(
                select(RawSubmission).where(
                    col(RawSubmission.id).in_(frontier) | col(RawSubmission.deprecated_id).in_(frontier)
                )
            )
        )
        frontier = {r.id for r in found if r.id not in rows}
        rows.update({r.id: r for r in found})
    replaced = {r.deprecated_id for r in rows.values() if r.deprecated_id and not r.deleted}
    return sorted((r for r in rows.values() if not r.deleted and r.id not in replaced), key=lambda r: r.id)


def choose_version(
    settings: Settings, record: str, instance_id: str, *, chosen_by: str, couch: Couch | None = None
) -> dict[str, Any]:
    """Make ``instance_id`` the version of ``record`` that counts. Raises NotFound / BadRequest."""
    engine = init_db(settings)
    own = couch is None
    couch = couch or Couch.from_settings(settings, timeout=60)
    try:
        with Session(engine) as session:
            found = heads(session, record)
            if not found:
                raise NotFound(
                    f"Không có phiếu '{record}' trong dữ liệu đã nhận.", f"No record '{record}' has landed."
                )
            ids = [h.id for h in found]
            if instance_id not in ids:
                raise BadRequest(
                    f"'{instance_id}' không phải phiên bản hiện hành của phiếu '{record}' (chọn một trong: "
                    f"{', '.join(ids)}).",
                    f"'{instance_id}' is not a current version of record '{record}' (choose one of: "
                    f"{', '.join(ids)}).",
                    code="version_not_a_head",
                )
            ingest.upsert(
                session,
                VersionChoice,
                [
                    {
                        "record": record,
                        "instance_id": instance_id,
                        "chosen_by": chosen_by,
                        "chosen_at": datetime.now(UTC),
                    }
                ],
            )
            doc = couch.get(settings.submissions_db, instance_id)
            changes = [{"id": instance_id, "seq": None, "doc": doc}] if doc else []
            out = follower.apply_changes(session, changes, couch, settings.submissions_db, settings)
            follower.mark_due(settings, session, out.touched)
            session.commit()
            follower.refresh_due(settings, session, out.touched)
            cands = [versions.Candidate(h.id, h.end_time, h.received_at) for h in found]
            return {
                "record": record,
                "counts": versions.winner(cands, instance_id).id,
                "versions": [c.id for c in versions.ranked(cands, instance_id)],
                "touched": out.touched,
            }
    finally:
        if own:
            couch.close()
