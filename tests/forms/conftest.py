"""Fixtures for the forms tests: one real build of the committed XLSForms per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from forms.build import build_all
from forms.catalog import BuiltForm

SRC = Path(__file__).resolve().parents[2] / "forms" / "xlsforms"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("forms-build")
    build_all(SRC, out)
    return out


@pytest.fixture(scope="session")
def built(build_dir: Path) -> dict[str, BuiltForm]:
    from forms.catalog import Catalog

    return {b.form_id: b for b in Catalog(build_dir).current()}
