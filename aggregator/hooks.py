"""Extension points the follower calls after each committed page (filled in by the indicators package)."""

from __future__ import annotations

from sqlmodel import Session


def after_page(session: Session, submission_ids: list[str]) -> None:
    """Called after a page of submissions is committed (ids landed, replaced or deleted). No-op by default.

    Runs in the follower's process with an open session on the same database; it must be idempotent and should
    commit its own work. An exception here is logged by the follower and does not undo the page.
    """
    del session, submission_ids
