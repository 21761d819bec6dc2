"""Fixtures for edge sync: an edge store and a province store, each a real pouchdb-server of its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.couch import Couch
from core.services import CouchProcess, start_pouchdb
from core.settings import Settings
from tests.conftest import make_settings
from tests.edge.netlink import Link, NetnsUnavailable


@dataclass
class Pair:
    edge: CouchProcess
    province: CouchProcess
    edge_settings: Settings
    province_settings: Settings

    def edge_couch(self) -> Couch:
        return Couch(self.edge.url, self.edge.user, self.edge.password)

    def province_couch(self) -> Couch:
        return Couch(self.province.url, self.province.user, self.province.password, timeout=10)


@pytest.fixture()
def pair(tmp_path: Path) -> Iterator[Pair]:
    edge = start_pouchdb(tmp_path / "edge-couch", user="admin", password="admin")
    province = start_pouchdb(tmp_path / "province-couch", user="admin", password="admin")
    try:
        (tmp_path / "edge").mkdir()
        (tmp_path / "province").mkdir()
        es = make_settings(tmp_path / "edge", edge, node_name="edge:31108")
        ps = make_settings(tmp_path / "province", province, submissions_db=es.submissions_db,
                           accounts_db=es.accounts_db)
        yield Pair(edge, province, es, ps)
    finally:
        edge.stop()
        province.stop()


@pytest.fixture()
def degraded_link(pair: Pair) -> Iterator[Link]:
    """The degraded link to the pair's province; skipped only where network namespaces cannot be created."""
    try:
        link = Link(pair.province.port).__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces cannot be created here: {exc}")
    try:
        yield link
    finally:
        link.close()  # namespaces (and with them the veth pair) are deleted whatever happened


def wait_until(cond: Callable[[], bool], timeout: float, every: float = 0.5) -> float:
    """Seconds it took for ``cond`` to hold; fails the test after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if cond():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - a store restarting answers with errors for a moment
            pass
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout:.0f}s")
