"""Simulator fixtures: the real compiled forms and a real sync server (uvicorn process) on pouchdb-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.couch import Couch
from core.services import CouchProcess, free_port
from core.settings import ROOT, Settings
from forms.build import build_all
from forms.catalog import BuiltForm
from simulator.fill import FormTemplate, load_form
from tests.conftest import make_settings

USER, PASSWORD = "ctv_tinh", "mat-khau-123"


@pytest.fixture(scope="session")
def built_forms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's real XLSForms, built once (pyxform + ODK Validate) like `carecheck forms build`."""
    out = tmp_path_factory.mktemp("forms")
    build_all(ROOT / "forms" / "xlsforms", out)
    return out


@pytest.fixture(scope="session")
def hh_form(built_forms: Path) -> BuiltForm:
    from forms.catalog import Catalog

    form = Catalog(built_forms).get("household_child_check")
    assert form is not None
    return form


@pytest.fixture(scope="session")
def template(hh_form: BuiltForm) -> FormTemplate:
    return load_form(hh_form.xml_bytes())


@dataclass
class LiveServer:
    """A `carecheck serve` process on a free loopback port, its settings and the store behind it."""

    url: str
    port: int
    settings: Settings
    couch: Couch
    proc: subprocess.Popen[bytes]
    log: Path

    def submission_ids(self) -> list[str]:
        rows = self.couch.all_docs(self.settings.submissions_db)["rows"]
        return [r["id"] for r in rows if not r["id"].startswith("_design/")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_server(tmp: Path, couch_server: CouchProcess, built_forms: Path, **over: object) -> LiveServer:
    """`carecheck serve` in its own process group, configured only through CARECHECK_* variables."""
    from sync_server.auth import Accounts

    settings = make_settings(tmp, couch_server, forms_build_dir=built_forms, **over)
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    # A mobile team: a collaborator (officers do not submit).
    Accounts(couch, settings).add(USER, PASSWORD, "collaborator", "899")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env.update({
        "CARECHECK_VAR_DIR": str(settings.var_dir), "CARECHECK_COUCHDB_URL": settings.couchdb_url,
        "CARECHECK_COUCHDB_USER": settings.couchdb_user,
        "CARECHECK_COUCHDB_PASSWORD": settings.couchdb_password,
        "CARECHECK_SUBMISSIONS_DB": settings.submissions_db, "CARECHECK_ACCOUNTS_DB": settings.accounts_db,
        "CARECHECK_FORMS_BUILD_DIR": str(built_forms),
        "CARECHECK_MAX_SUBMISSION_BYTES": str(settings.max_submission_bytes),
    })
    log = tmp / f"serve-{port}.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "carecheck"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", port, settings, couch, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"carecheck serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.head(f"{server.url}/submission", timeout=1).status_code in (204, 401):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"carecheck serve did not answer within 30 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, couch_server: CouchProcess,
                built_forms: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"), couch_server, built_forms)
    yield server
    server.stop()
