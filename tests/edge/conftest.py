"""Fixtures for edge sync: an edge store and a province store, each a real pouchdb-server of its own."""

from __future__ import annotations

import contextlib
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
    """The degraded link to the province's sync server (an edge replicates through it, never to the province
    store); skipped only where network namespaces cannot be created."""
    with province_server(pair) as url:
        try:
            link = Link(int(url.rsplit(":", 1)[1])).__enter__()
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


@contextlib.contextmanager
def province_server(pair: Pair, **over: object) -> Iterator[str]:
    """The province's sync server (a real uvicorn) in front of the pair's province store; yields its URL."""
    from console.app import create_app
    from core.stores import ensure_store
    from tests.edge.netlink import serve_in_thread

    ensure_store(pair.province_couch(), pair.province_settings)
    with serve_in_thread(create_app(pair.province_settings.model_copy(update=over))) as url:
        yield url


def enrol(pair: Pair, area: str, collaborators: tuple[str, ...] = ()) -> str:
    """`carecheck edge enroll --area` at the province (plus collaborator accounts there); the secret."""
    from sync_server.auth import Accounts
    from sync_server.edges import enroll

    ps, province = pair.province_settings, pair.province_couch()
    province.ensure_db(ps.accounts_db)
    for name in collaborators:
        Accounts(province, ps).add(name, "mat-khau-123", "collaborator", area)
    return enroll(province, ps, area).token
