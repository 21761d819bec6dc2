"""Sync server fixtures: settings on the session's pouchdb-server, a built test form, accounts, a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from core.couch import Couch
from core.services import CouchProcess
from core.settings import Settings
from sync_server.auth import Accounts
from tests.conftest import make_settings
from tests.sync_server.helpers import write_form

PASSWORD = "mat-khau-123"


@dataclass
class Server:
    settings: Settings
    client: TestClient
    couch: Couch

    def auth(self, name: str = "ctv_pq") -> httpx.DigestAuth:
        return httpx.DigestAuth(name, PASSWORD)

    def doc(self, instance_id: str) -> dict | None:
        return self.couch.get(self.settings.submissions_db, instance_id)


_ACCOUNT_DOCS: list[dict[str, object]] = []


def add_accounts(settings: Settings, couch: Couch) -> None:
    """The test accounts: made by Accounts.add once per session (argon2 is slow on purpose), then copied."""
    if not _ACCOUNT_DOCS:
        acc = Accounts(couch, settings)
        acc.add("ctv_pq", PASSWORD, "collaborator", "31078")  # a collaborator in a Phú Quốc commune
        acc.add("ctv_rg", PASSWORD, "collaborator", "30742")  # a collaborator in Rạch Giá
        acc.add("huyen_pq", PASSWORD, "district", "911")
        acc.add("tinh", PASSWORD, "province", None)
        rows = couch.all_docs(settings.accounts_db, include_docs=True)["rows"]
        _ACCOUNT_DOCS.extend({k: v for k, v in r["doc"].items() if k != "_rev"} for r in rows)
        return
    couch.ensure_db(settings.accounts_db)
    couch.bulk_docs(settings.accounts_db, [dict(d) for d in _ACCOUNT_DOCS])


@pytest.fixture()
def server_settings(tmp_path: Path, couch_server: CouchProcess) -> Settings:
    s = make_settings(tmp_path, couch_server, max_submission_bytes=200_000)
    write_form(s.effective_forms_build_dir, media={"itemsets.csv": b"list_name,name,label\nx,1,One\n"})
    return s


@pytest.fixture()
def server(server_settings: Settings, couch: Couch) -> Iterator[Server]:
    add_accounts(server_settings, couch)
    with TestClient(create_app(server_settings), base_url="http://phone.test") as client:
        yield Server(server_settings, client, couch)
