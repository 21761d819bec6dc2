"""The Celery app: broker and result backend from settings, task routes, beat schedule, safe delivery.

Embedded default: kombu's SQLAlchemy transport on SQLite under var/ (no server). Tests and production: Redis.
``acks_late`` + prefetch 1: a task is acknowledged only when done, so a killed worker's task is redelivered;
that
is harmless because every task is idempotent (checkpoint compare-and-swap, upserts on the document id).
"""

from __future__ import annotations

from celery import Celery

from core.settings import get_settings

FOLLOW_EVERY_S = 1.0
RETRY_QUARANTINE_EVERY_S = 30.0


def make_app() -> Celery:
    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("carecheck", include=["aggregator.tasks"])
    app.conf.update(
        broker_url=settings.effective_broker_url,
        result_backend=settings.effective_result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_expires=3600,
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue="carecheck",
        task_routes={"carecheck.*": {"queue": "carecheck"}},
        beat_schedule={
            # Expiring beats: if no worker runs for a while, stale "follow" messages are dropped, not
            # replayed.
            "follow-changes": {
                "task": "carecheck.follow",
                "schedule": FOLLOW_EVERY_S,
                "options": {"expires": 2 * FOLLOW_EVERY_S},
            },
            "retry-quarantine": {
                "task": "carecheck.retry_quarantine",
                "schedule": RETRY_QUARANTINE_EVERY_S,
                "options": {"expires": RETRY_QUARANTINE_EVERY_S},
            },
        },
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
    )
    return app


app = make_app()
