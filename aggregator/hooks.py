"""Extension points the follower calls after each committed page: refresh the indicator cells it touched."""

from __future__ import annotations

import logging
import time

from sqlmodel import Session

log = logging.getLogger("carecheck.indicators")


def after_page(session: Session, submission_ids: list[str]) -> None:
    """Called after a page of submissions is committed (ids landed, replaced or deleted).

    Brings the indicator cells those submissions touch up to date, and the district, province and
    2025-commune cells above them (``aggregator.rollup.refresh``: by difference, per unit the page touches);
    idempotent, commits its own work. An
    exception here is logged by the follower and does not undo the page: the submissions stay in
    ``RefreshDue`` and the next follower run refreshes them (``follower.refresh_due``).
    """
    if not submission_ids:
        return
    from aggregator.rollup import refresh

    t0 = time.perf_counter()
    stats = refresh(session, list(submission_ids))
    log.info(
        "indicators refreshed for %d submissions in %.3f s: %s",
        len(submission_ids),
        time.perf_counter() - t0,
        stats,
    )
