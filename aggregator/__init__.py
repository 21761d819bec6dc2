"""The aggregator: follows the submissions feed into SQL (Celery), keeps the child registry, rolls up indicators."""
