"""A PostgreSQL full rebuild computes large groups over several connections (stock groups in parts by unit,
flows aside): the same cells as on one; a failed part leaves the live table as it was and nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from aggregator import rollup
from aggregator.indicators import load
from aggregator.rollup import build
from tests.indicators.test_rollup import cells, database, seeded


@pytest.fixture
def pg(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    with database("postgresql", tmp_path, request) as eng:
        yield eng


def leftovers(engine: Engine) -> list[str]:
    """Build tables and the parts' temporary tables still in the catalog."""
    q = text(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND (relname LIKE 'indicator_value_build%' "
        "OR relname LIKE 'indicator_value_old%' OR relname LIKE 'rebuild_wide%')"
    )
    with engine.connect() as c:
        return [r[0] for r in c.execute(q)]


@pytest.mark.parametrize("connections", [2, 3])
def test_split_rebuild_equals_whole(pg: Engine, monkeypatch: pytest.MonkeyPatch, connections: int) -> None:
    seeded(pg)  # small tables: computed whole
    whole = cells(pg)
    used: list[int] = []
    fetch = rollup.fetch_wide

    def counting(engine: Engine, stmts: list[Any]) -> list[list[tuple[Any, ...]]]:
        used.append(len(stmts))
        return fetch(engine, stmts)

    monkeypatch.setattr(build, "SPLIT_ROWS", -1)  # every group is large, whatever its size
    monkeypatch.setattr(build, "REBUILD_CONNECTIONS", connections)
    monkeypatch.setattr(build, "fetch_wide", counting)
    rollup.rebuild(pg)
    # the stock groups split (the other parts on connections 1…), the flow groups aside on one more
    stock = sum(1 for g in rollup.groups(load().values()) if g[1] == "stock")
    flows = len(rollup.groups(load().values())) - stock
    assert sorted(used) == sorted([stock] * (connections - 1) + [flows])
    assert cells(pg) == whole
    assert leftovers(pg) == []


def test_failed_part_leaves_the_live_table(pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded(pg)
    before = cells(pg)

    def failing(engine: Engine, stmts: list[Any]) -> list[list[tuple[Any, ...]]]:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(build, "SPLIT_ROWS", -1)
    monkeypatch.setattr(build, "fetch_wide", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        rollup.rebuild(pg)
    assert cells(pg) == before
    assert leftovers(pg) == []
