"""Through a real `carecheck serve` process (uvicorn) with httpx, and the `carecheck user` commands."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.couch import Couch
from core.services import CouchProcess, free_port
from core.settings import ROOT
from tests.sync_server.helpers import instance, parts, write_form

CARECHECK = str(Path(sys.executable).parent / "carecheck")


def _env(tmp_path: Path, couch: CouchProcess) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ)
    env.update(
        {
            "CARECHECK_VAR_DIR": str(tmp_path / "var"),
            "CARECHECK_COUCHDB_URL": couch.base_url,
            "CARECHECK_COUCHDB_USER": couch.user,
            "CARECHECK_COUCHDB_PASSWORD": couch.password,
            "CARECHECK_SUBMISSIONS_DB": f"submissions_{tag}",
            "CARECHECK_ACCOUNTS_DB": f"accounts_{tag}",
            "CARECHECK_FORMS_BUILD_DIR": str(tmp_path / "forms"),
            "CARECHECK_MAX_SUBMISSION_BYTES": "50000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARECHECK, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def served(tmp_path: Path, couch_server: CouchProcess) -> Iterator[tuple[str, dict[str, str]]]:
    env = _env(tmp_path, couch_server)
    (tmp_path / "var").mkdir()
    write_form(tmp_path / "forms")
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
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/formList", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield base, env
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_user_cli_and_real_server(served: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = served
    ok = _cli(
        env,
        tmp_path,
        "user",
        "add",
        "ctv1",
        "--password",
        "bi-mat-99",
        "--role",
        "collaborator",
        "--area",
        "31078",
    )
    assert ok.returncode == 0, ok.stderr
    bad = _cli(
        env,
        tmp_path,
        "user",
        "add",
        "ctv2",
        "--password",
        "bi-mat-99",
        "--role",
        "district",
        "--area",
        "31078",
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "district" in bad.stderr
    bad = _cli(env, tmp_path, "user", "add", "ctv3", "--password", "bi-mat-99", "--area", "12345")
    assert bad.returncode == 1 and "12345" in bad.stderr
    assert "ctv1" in _cli(env, tmp_path, "user", "list").stdout

    auth = httpx.DigestAuth("ctv1", "bi-mat-99")
    with httpx.Client(base_url=base, auth=auth, timeout=30) as c:
        r = c.head("/submission")
        assert r.status_code == 204 and r.headers["x-openrosa-accept-content-length"] == "50000"
        assert len(r.headers.get_list("date")) == 1 and r.headers["x-openrosa-version"] == "1.0"
        fl = c.get("/formList")
        assert fl.status_code == 200 and f"{base}/forms/hh_test/form.xml".encode() in fl.content
        iid = f"uuid:{uuid.uuid4()}"
        xml = instance(instance_id=iid, house_photo="h.jpg")
        assert c.post("/submission", files=parts(xml, {"h.jpg": b"jpeg" * 100})).status_code == 201
        assert c.post("/submission", files=parts(xml, {"h.jpg": b"jpeg" * 100})).status_code == 202
        big = c.post("/submission", files=parts(instance(), {"b.jpg": b"z" * 60_000}))
        assert big.status_code == 413 and b"OpenRosaResponse" in big.content

        def chunked():  # type: ignore[no-untyped-def]
            yield b'--b\r\nContent-Disposition: form-data; name="xml_submission_file"; '
            yield b'filename="s.xml"\r\n\r\n'
            yield instance()
            yield b"\r\n--b--\r\n"

        r = c.post(
            "/submission", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert r.status_code == 201 and "content-length" not in r.request.headers
    assert _cli(env, tmp_path, "user", "disable", "ctv1").returncode == 0
    # Disabling takes effect once the server's short account cache expires (30 s); a fresh login is refused.
    r = httpx.get(f"{base}/formList", auth=("ctv1", "wrong"), timeout=10)
    assert r.status_code == 401 and r.headers.get_list("www-authenticate")


def test_lost_response_then_resend(
    served: tuple[str, dict[str, str]], tmp_path: Path, couch_server: CouchProcess
) -> None:
    """The phone's connection drops after sending: the record is kept, and the resend is acknowledged once."""
    base, env = served
    assert _cli(env, tmp_path, "user", "add", "ctv9", "-p", "bi-mat-99", "--area", "31078").returncode == 0
    iid = f"uuid:{uuid.uuid4()}"
    files = parts(instance(instance_id=iid, house_photo="h.jpg"), {"h.jpg": b"jpeg" * 500})
    req = httpx.Request("POST", f"{base}/submission?deviceID=collect:lost", files=files)
    body = req.read()
    token = base64.b64encode(b"ctv9:bi-mat-99").decode()
    head = (
        f"POST /submission?deviceID=collect:lost HTTP/1.1\r\nHost: {req.url.netloc.decode()}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: {req.headers['content-type']}\r\n"
        f"Content-Length: {len(body)}\r\nX-OpenRosa-Version: 1.0\r\n\r\n"
    ).encode()
    couch = Couch(couch_server.url, couch_server.user, couch_server.password)
    db = env["CARECHECK_SUBMISSIONS_DB"]
    with socket.create_connection((req.url.host, req.url.port or 80)) as s:
        s.sendall(head + body)
        # The server stores it and answers, but the answer never reaches the phone: hang up unread.
        deadline = time.monotonic() + 10
        while couch.get(db, iid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    stored = couch.get(db, iid)
    assert stored is not None and stored["device_id"] == "collect:lost"
    r = httpx.post(f"{base}/submission?deviceID=collect:lost", files=files, auth=("ctv9", "bi-mat-99"))
    assert r.status_code == 202 and "Đã nhận trước đó" in r.text
    assert couch.get(db, iid)["_rev"] == stored["_rev"]

    # The connection drops while sending: the server may or may not have it; the resend makes exactly one.
    iid2 = f"uuid:{uuid.uuid4()}"
    files2 = parts(instance(instance_id=iid2))
    req2 = httpx.Request("POST", f"{base}/submission", files=files2)
    body2 = req2.read()
    head2 = (
        head.replace(b"?deviceID=collect:lost", b"")
        .replace(f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(body2)}".encode())
        .replace(req.headers["content-type"].encode(), req2.headers["content-type"].encode())
    )
    with socket.create_connection((req.url.host, req.url.port or 80)) as s:
        s.sendall(head2 + body2[: len(body2) // 2])
    r = httpx.post(f"{base}/submission", files=files2, auth=("ctv9", "bi-mat-99"))
    assert r.status_code in (201, 202)
    ids = [row["id"] for row in couch.all_docs(db)["rows"] if not row["id"].startswith("_design/")]
    assert ids.count(iid2) == 1 and couch.get(db, iid2)["_rev"].startswith("1-")
