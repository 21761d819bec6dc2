"""/healthz tells a container orchestrator whether the server can durably accept submissions."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from console.app import create_app
from core.services import CouchProcess
from tests.conftest import make_settings


def test_healthz_follows_the_store(tmp_path: Path, fresh_couch: CouchProcess) -> None:
    settings = make_settings(tmp_path, fresh_couch)
    with TestClient(create_app(settings)) as client:
        client.head("/submission")  # any request sets the store up
        ok = client.get("/healthz")
        assert ok.status_code == 200 and ok.json()["status"] == "ok"
        fresh_couch.stop()
        down = client.get("/healthz")
        assert down.status_code == 503 and down.headers["Retry-After"]
        fresh_couch.start()
        assert client.get("/healthz").status_code == 200
