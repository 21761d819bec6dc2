"""The aggregator: submissions feed → SQL (Celery), the child registry, indicator rollups."""
