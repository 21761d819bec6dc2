"""HTTP routes; every module here exposing a module-level ``router`` is mounted by ``create_app``."""
