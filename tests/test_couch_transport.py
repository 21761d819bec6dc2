"""The store connection survives the keep-alive race and answers a hung store at once.

A raw socket server plays the store: it answers the first request on a connection and then closes that
connection when the next request arrives on it, unanswered (what a CouchDB or Node server does when its
keep-alive timer fires in the instant a request comes in). A read is retried on a fresh connection; a write
is not (the server may have applied it); a read timeout is not retried. The intake's lean write path
(``Couch.hot_post``) keeps the same rules and replaces a pooled connection the store closed while idle.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from core.couch import Couch
from core.errors import StoreUnavailable


@dataclass
class FakeStore:
    """Answers ``{"ok": true}`` once per connection, then drops (or, with ``hang``, never answers)."""

    hang: bool = False
    idle_close: bool = False  # close each connection right after its first answer (the keep-alive timer)
    received: list[str] = field(default_factory=list)
    port: int = 0

    def handle(self, conn: socket.socket) -> None:
        with conn:
            served = 0
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.received.append(head.split(b" ")[0].decode())
                if self.hang:
                    threading.Event().wait(3)
                    return
                if served:  # the keep-alive timer fired: the request is read, never answered
                    return
                body = json.dumps({"ok": True, "_id": "x", "_rev": "1-a"}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: keep-alive\r\nContent-Length: " + str(len(body)).encode()
                             + b"\r\n\r\n" + body)
                served += 1
                if self.idle_close:
                    return


@contextmanager
def fake_store(*, hang: bool = False, idle_close: bool = False) -> Iterator[FakeStore]:
    store = FakeStore(hang=hang, idle_close=idle_close)
    srv = socket.create_server(("127.0.0.1", 0))
    store.port = srv.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=store.handle, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield store
    finally:
        stop.set()
        t.join()
        srv.close()


def test_a_read_on_a_connection_the_store_closed_is_sent_again() -> None:
    with fake_store() as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)
        couch.request("GET", "db/a", action="read")
        r = couch.request("GET", "db/b", action="read")  # first try dropped, second on a new connection
        assert r.json()["ok"] is True
        assert store.received == ["GET", "GET", "GET"]


def test_a_write_on_a_dropped_connection_is_not_sent_twice() -> None:
    with fake_store() as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)
        couch.request("GET", "db/a", action="read")
        with pytest.raises(StoreUnavailable):
            couch.request("PUT", "db/b", action="write", json={"v": 1})
        assert store.received == ["GET", "PUT"]


def test_a_hung_store_costs_one_timeout_not_three() -> None:
    with fake_store(hang=True) as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=0.5)
        with pytest.raises(StoreUnavailable, match="ReadTimeout"):
            couch.request("GET", "db/a", action="read")
        assert store.received == ["GET"]


def _post(couch: Couch) -> bytes:
    return asyncio.run(couch.hot_post("db/_bulk_docs", b'{"docs":[]}', action="write"))


def test_hot_post_a_write_on_a_dropped_connection_is_not_sent_twice() -> None:
    with fake_store() as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)

        async def twice() -> None:  # one event loop: the second write goes on the kept-alive connection
            assert json.loads(await couch.hot_post("db/_bulk_docs", b"{}", action="write"))["ok"] is True
            with pytest.raises(StoreUnavailable, match="ConnectionResetError"):
                await couch.hot_post("db/_bulk_docs", b"{}", action="write")

        asyncio.run(twice())
        assert store.received == ["POST", "POST"]


def test_hot_post_replaces_a_connection_the_store_closed_while_idle() -> None:
    with fake_store(idle_close=True) as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)

        async def twice() -> None:
            await couch.hot_post("db/_bulk_docs", b"{}", action="write")
            for _ in range(500):  # the store's close (FIN) reaches the idle connection before the next write
                if couch._hot._idle[0][1][1].at_eof():
                    break
                await asyncio.sleep(0.01)
            assert json.loads(await couch.hot_post("db/_bulk_docs", b"{}", action="write"))["ok"] is True

        asyncio.run(twice())
        assert store.received == ["POST", "POST"]  # each sent once, the second on a new connection


def test_hot_post_a_hung_store_costs_one_timeout() -> None:
    with fake_store(hang=True) as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=0.5)
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            _post(couch)
        assert store.received == ["POST"]


def test_hot_post_never_writes_on_a_connection_idle_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keep-alive race: the store closes an idle connection in the instant a write is sent on it (here
    it reads that request and never answers). A connection idle longer than ``IDLE_REUSE_S`` is not reused."""
    import core.couch

    monkeypatch.setattr(core.couch, "IDLE_REUSE_S", 0.05)
    with fake_store() as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)

        async def twice() -> None:
            await couch.hot_post("db/_bulk_docs", b"{}", action="write")
            await asyncio.sleep(0.1)  # idle past the limit (the store has not closed it yet)
            assert json.loads(await couch.hot_post("db/_bulk_docs", b"{}", action="write"))["ok"] is True

        asyncio.run(twice())
        assert store.received == ["POST", "POST"]
