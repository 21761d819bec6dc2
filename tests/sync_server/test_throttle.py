"""Failed logins: throttled per account and per address (429 + Retry-After), shared by server processes,
cleared by `carecheck user unlock`, recorded in the audit log and shown by `carecheck status`."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from core import audit, throttle
from core.throttle import Throttle
from tests.sync_server.conftest import PASSWORD, Server
from tests.sync_server.helpers import instance, parts
from tests.sync_server.test_uvicorn import CARECHECK, _cli
from tests.sync_server.test_uvicorn import served as served  # noqa: F401 - the real-server fixture


def test_account_lockout_429_then_unlock(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "CACHE_TTL", 0.0)  # a second app (process) sees the lock at once
    c = server.client
    for i in range(throttle.ACCOUNT_LIMIT):
        r = c.get("/formList", auth=httpx.DigestAuth("ctv_pq", f"guess-{i}"))
        assert r.status_code == 401, (i, r.status_code)
    # Locked: every attempt is a 429 with Retry-After, the right password too, Basic too, on /sync too.
    for auth in (httpx.DigestAuth("ctv_pq", PASSWORD), httpx.BasicAuth("ctv_pq", PASSWORD)):
        r = c.get("/formList", auth=auth)
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= throttle.ACCOUNT_LOCK + 1
        assert b"OpenRosaResponse" in r.content
    r = c.get("/sync/submissions/_changes", auth=httpx.BasicAuth("ctv_pq", PASSWORD))
    assert r.status_code == 429 and r.json()["error"] == "too_many_requests" and r.headers["retry-after"]
    # Another server process on the same store refuses too (the counters live in CouchDB).
    with TestClient(create_app(server.settings), base_url="http://phone.test") as other:
        assert other.get("/formList", auth=httpx.DigestAuth("ctv_pq", PASSWORD)).status_code == 429
        # Other accounts are not affected.
        assert other.get("/formList", auth=httpx.DigestAuth("ctv_rg", PASSWORD)).status_code == 200
    events = audit.latest(server.couch, server.settings)
    assert any(e["kind"] == audit.ACCOUNT_LOCKED and e["actor"] == "ctv_pq" for e in events)
    lines = throttle.security_lines(server.settings, "en")
    assert any("account_locked" in line for line in lines) and any("Locked: ctv_pq" in line for line in lines)
    # An officer clears it.
    assert Throttle(server.couch, server.settings).unlock("ctv_pq", by="huyen_pq") is True
    assert c.get("/formList", auth=httpx.DigestAuth("ctv_pq", PASSWORD)).status_code == 200
    assert any(e["kind"] == audit.ACCOUNT_UNLOCKED for e in audit.latest(server.couch, server.settings))


def test_address_throttle(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "ADDRESS_LIMIT", 12)
    c = server.client
    for i in range(12):  # many names from one address, each below its own account limit
        assert c.get("/formList", auth=httpx.BasicAuth(f"guess{i}", "x")).status_code == 401
    r = c.get("/formList", auth=httpx.DigestAuth("ctv_rg", PASSWORD))
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert any(e["kind"] == audit.ADDRESS_THROTTLED for e in audit.latest(server.couch, server.settings))


def test_thirty_wrong_passwords_fast_are_throttled(server: Server) -> None:
    statuses = [
        server.client.get("/formList", auth=httpx.BasicAuth("ctv_pq", f"w{i}")).status_code for i in range(30)
    ]
    assert statuses[: throttle.ACCOUNT_LIMIT] == [401] * throttle.ACCOUNT_LIMIT
    assert set(statuses[throttle.ACCOUNT_LIMIT :]) == {429}


def test_real_server_unlock_cli_status_and_disconnect(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = served
    assert (
        _cli(
            env,
            tmp_path,
            "user",
            "add",
            "ctv_x",
            "--password",
            "secret-pw",
            "--role",
            "collaborator",
            "--area",
            "31078",
        ).returncode
        == 0
    )
    with httpx.Client(base_url=base, timeout=10) as c:
        for i in range(throttle.ACCOUNT_LIMIT):
            assert c.get("/formList", auth=httpx.DigestAuth("ctv_x", f"no-{i}")).status_code == 401
        r = c.get("/formList", auth=httpx.DigestAuth("ctv_x", "secret-pw"))
        assert r.status_code == 429 and r.headers["retry-after"]
        out = _cli(env, tmp_path, "user", "unlock", "ctv_x", "--by", "huyen_pq")
        assert out.returncode == 0 and "ctv_x" in out.stdout, out.stderr
        deadline = time.monotonic() + 10  # the server's cache of the lock is a couple of seconds
        while c.get("/formList", auth=httpx.DigestAuth("ctv_x", "secret-pw")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # A phone that loses coverage mid-upload: an info line, no traceback; the server goes on.
        host, port = base.removeprefix("http://").split(":")
        xml = instance(instance_id=f"uuid:{uuid.uuid4()}")
        body = b"".join(p[1][1] for p in parts(xml))
        with socket.create_connection((host, int(port))) as s:
            s.sendall(
                b"POST /submission HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                b"Authorization: Basic "
                + __import__("base64").b64encode(b"ctv_x:secret-pw")
                + b"\r\nContent-Length: 40000\r\n\r\n"
                + body[:200]
            )
            time.sleep(0.5)
        time.sleep(1.0)
        assert c.get("/formList", auth=httpx.DigestAuth("ctv_x", "secret-pw")).status_code == 200
    status = subprocess.run(
        [CARECHECK, "status", "--lang", "en"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Security log" in status.stdout and "account_locked" in status.stdout, (
        status.stdout + status.stderr
    )
    log = (tmp_path / "serve.log").read_text()
    assert "client disconnected during upload" in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]


def test_attempt_is_the_sign_in_the_console_reuses(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """core.throttle.attempt wraps a password check: refused while locked, failures counted, then cleared."""
    monkeypatch.setattr(throttle, "ACCOUNT_LIMIT", 3)
    t = Throttle(server.couch, server.settings)
    calls: list[str] = []

    def verify(ok: bool) -> str | None:
        calls.append("verify")
        return "account" if ok else None

    assert throttle.attempt(t, "officer_x", "10.0.0.9", lambda: verify(False), route="POST /signin") is None
    assert throttle.attempt(t, "officer_x", "10.0.0.9", lambda: verify(True)) == "account"  # clears failures
    for _ in range(3):
        throttle.attempt(t, "officer_x", "10.0.0.9", lambda: verify(False))
    n = len(calls)
    with pytest.raises(throttle.TooManyAttempts) as exc:
        throttle.attempt(t, "officer_x", "10.0.0.9", lambda: verify(True))
    assert len(calls) == n, "a locked account's password is not even checked"
    assert exc.value.status == 429 and int(exc.value.headers["Retry-After"]) > 0
    assert exc.value.code == "too_many_attempts"
    assert t.unlock("officer_x") is True
    assert throttle.attempt(t, "officer_x", "10.0.0.9", lambda: verify(True)) == "account"


def test_captured_digest_header_cannot_be_replayed_for_another_body(server: Server) -> None:
    """A captured Digest header (nonce, nc, response) sent again with another body is refused."""
    c = server.client
    first = c.post("/submission", files=parts(instance()), auth=httpx.DigestAuth("ctv_pq", PASSWORD))
    assert first.status_code == 201
    captured = first.request.headers["authorization"]
    assert "nc=" in captured
    forged_id = f"uuid:{uuid.uuid4()}"
    replay = c.post(
        "/submission", files=parts(instance(instance_id=forged_id)), headers={"Authorization": captured}
    )
    assert replay.status_code == 401
    assert any("stale=true" in v for v in replay.headers.get_list("www-authenticate"))
    assert server.doc(forged_id) is None
