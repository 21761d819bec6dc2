"""Test-only helpers (fault-injecting proxy)."""
