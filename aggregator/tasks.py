"""Celery tasks: thin wrappers (sequences and ids in, plain functions do the work), idempotent by design."""

from __future__ import annotations

from typing import Any

from aggregator import follower
from aggregator.celery_app import app
from core.errors import StoreUnavailable
from core.settings import get_settings


@app.task(  # type: ignore[untyped-decorator]  # celery ships no type hints
    name="carecheck.follow", acks_late=True, autoretry_for=(StoreUnavailable,), retry_backoff=2, max_retries=3
)
def follow(budget_s: float = 10.0) -> dict[str, Any]:
    """Drain the changes feed from the SQL checkpoint (no-op if another run holds the follower lock)."""
    settings = get_settings()
    follower.heartbeat(settings, str(follow.request.hostname or "worker"))
    return follower.follow(settings, budget_s=budget_s).as_dict()


@app.task(  # type: ignore[untyped-decorator]  # celery ships no type hints
    name="carecheck.retry_quarantine",
    acks_late=True,
    autoretry_for=(StoreUnavailable,),
    retry_backoff=5,
    max_retries=3,
)
def retry_quarantine(max_docs: int = 100) -> dict[str, int]:
    """Re-process quarantined documents whose back-off has expired."""
    return follower.retry_quarantine(get_settings(), max_docs=max_docs)
