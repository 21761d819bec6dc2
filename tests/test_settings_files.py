"""Secrets from files (Docker secrets): CARECHECK_<NAME>_FILE; the database password apart from its URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_secret_files_and_database_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cr@t/x\n")
    monkeypatch.setenv("CARECHECK_DATABASE_URL", "postgresql+psycopg://carecheck@postgres:5432/carecheck")
    monkeypatch.setenv("CARECHECK_DATABASE_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("CARECHECK_COUCHDB_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("CARECHECK_PSEUDONYM_KEY_FILE", str(pw))
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.couchdb_password == "s3cr@t/x"
    assert s.pseudonym_key.get_secret_value() == "s3cr@t/x"
    assert s.effective_database_url == "postgresql+psycopg://carecheck:s3cr%40t%2Fx@postgres:5432/carecheck"
    assert "s3cr" not in repr(s)


def test_the_variable_itself_wins_and_a_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARECHECK_COUCHDB_PASSWORD", "direct")
    monkeypatch.setenv("CARECHECK_COUCHDB_PASSWORD_FILE", str(tmp_path / "absent"))
    assert Settings(_env_file=None).couchdb_password == "direct"  # type: ignore[call-arg]
    monkeypatch.delenv("CARECHECK_COUCHDB_PASSWORD")
    with pytest.raises(ValidationError, match="CARECHECK_COUCHDB_PASSWORD_FILE"):
        Settings(_env_file=None)  # type: ignore[call-arg]
