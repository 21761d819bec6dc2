"""A real `carecheck serve` on the session's pouchdb-server, with the real forms built and accounts made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.services import CouchProcess, free_port
from core.settings import ROOT

CARECHECK = str(Path(sys.executable).parent / "carecheck")
# Without the background-networking flags Chromium tries to reach the internet at start (DESIGN.md).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COLLABORATOR = ("ctv_pq_web", "mat-khau-1", "31078")  # Phường Dương Đông, Phú Quốc
OTHER = ("ctv_hatien_web", "mat-khau-2", "30766")
PROVINCE = ("tinh_web", "mat-khau-3")


@dataclass
class FieldServer:
    base: str
    env: dict[str, str]
    tmp: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CARECHECK, *args], env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=120
        )


def chromium_path() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    return found


@pytest.fixture()
def field_server(tmp_path: Path, couch_server: CouchProcess) -> Iterator[FieldServer]:
    if not (ROOT / "fieldapp" / "static" / "app.js").is_file():
        pytest.fail("the field web app is not built: run `make install` (node fieldapp/build.mjs)")
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ)
    env.update(
        {
            "CARECHECK_VAR_DIR": str(tmp_path / "var"),
            "CARECHECK_COUCHDB_URL": couch_server.base_url,
            "CARECHECK_COUCHDB_USER": couch_server.user,
            "CARECHECK_COUCHDB_PASSWORD": couch_server.password,
            "CARECHECK_SUBMISSIONS_DB": f"submissions_{tag}",
            "CARECHECK_ACCOUNTS_DB": f"accounts_{tag}",
            "CARECHECK_FORMS_BUILD_DIR": str(tmp_path / "forms"),
            "PYTHONPATH": str(ROOT),
        }
    )
    (tmp_path / "var").mkdir()
    server = FieldServer("", env, tmp_path)
    r = server.cli("forms", "build", "--out", str(tmp_path / "forms"))
    assert r.returncode == 0, r.stderr + r.stdout
    for name, password, area in (COLLABORATOR, OTHER):
        r = server.cli("user", "add", name, "--password", password, "--role", "collaborator", "--area", area)
        assert r.returncode == 0, r.stderr
    r = server.cli("user", "add", PROVINCE[0], "--password", PROVINCE[1], "--role", "province")
    assert r.returncode == 0, r.stderr
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [CARECHECK, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server.base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{server.base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
