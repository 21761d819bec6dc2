"""Alembic migrations of the SQL schema (see aggregator.schema)."""
