"""Tests of the aggregator ingestion (real pouchdb-server, PostgreSQL, Redis, celery workers)."""
