"""The store connection survives the keep-alive race and answers a hung store at once.

A raw socket server plays the store: it answers the first request on a connection and then closes that
connection when the next request arrives on it, unanswered (what a CouchDB or Node server does when its
keep-alive timer fires in the instant a request comes in). A read is retried on a fresh connection; a write
is not (the server may have applied it); a read timeout is not retried. The intake's lean write path
(``Couch.hot_post``) keeps the same rules and replaces a pooled connection the store closed while idle.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
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


def test_hot_post_a_write_on_a_dropped_connection_is_not_sent_twice() -> None:
    with fake_store() as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)
        assert json.loads(couch.hot_post("db/_bulk_docs", b'{"docs":[]}', action="write"))["ok"] is True
        with pytest.raises(StoreUnavailable, match="ConnectionResetError"):
            couch.hot_post("db/_bulk_docs", b'{"docs":[]}', action="write")
        assert store.received == ["POST", "POST"]


def test_hot_post_replaces_a_connection_the_store_closed_while_idle() -> None:
    with fake_store(idle_close=True) as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=5)
        couch.hot_post("db/_bulk_docs", b'{"docs":[]}', action="write")
        deadline = time.monotonic() + 5
        while len(couch._hot._idle) == 1 and not _closed(couch._hot._idle[0]) and time.monotonic() < deadline:
            time.sleep(0.01)  # the store has closed its end (the FIN arrived) before the next write
        assert json.loads(couch.hot_post("db/_bulk_docs", b'{"docs":[]}', action="write"))["ok"] is True
        assert store.received == ["POST", "POST"]  # each sent once, the second on a new connection


def test_hot_post_a_hung_store_costs_one_timeout() -> None:
    with fake_store(hang=True) as store:
        couch = Couch(f"http://127.0.0.1:{store.port}", "admin", "pw", timeout=0.5)
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            couch.hot_post("db/_bulk_docs", b'{"docs":[]}', action="write")
        assert store.received == ["POST"]


def _closed(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])
