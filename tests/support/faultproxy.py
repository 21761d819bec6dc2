"""A small HTTP/1.1 fault-injecting proxy for tests: lost responses, delays and connection resets, seeded.

It understands just enough HTTP/1.1 framing (Content-Length, chunked, HEAD/204/304) to give every request its
own fate, even on kept-alive connections:

- ``lost``: the request reaches the server and is answered, but the phone never hears the answer (the proxy
  reads the whole response, then resets the client's connection) — the case that makes phones resend;
- ``delay``: the response is held back for ``delay_s`` (longer than a client timeout, it becomes a timeout);
- ``reset``: the connection is reset before the request is forwarded (the server never sees it).

Runs its own asyncio loop in a daemon thread on a free loopback port; every read has a timeout, so it cannot
hang a test run.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

IDLE_TIMEOUT = 60.0
MAX_HEAD = 64 * 1024


@dataclass
class Faults:
    lost: float = 0.0
    delay: float = 0.0
    reset: float = 0.0
    delay_s: float = 1.0
    only_methods: tuple[str, ...] = ()  # empty = every method; e.g. ("POST",) to spare formList/HEAD


@dataclass
class FaultProxy:
    """Forward 127.0.0.1:<port> to ``upstream_port`` injecting ``faults``; ``counts`` says what happened."""

    upstream_port: int
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    upstream_host: str = "127.0.0.1"
    port: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ---
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, sock=sock))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # --- per request ---
    def _fate(self, method: str) -> str:
        f = self.faults
        if f.only_methods and method not in f.only_methods:
            return "ok"
        with self._lock:
            u = self._rng.random()
        for name, p in (("lost", f.lost), ("reset", f.reset), ("delay", f.delay)):
            if u < p:
                return name
            u -= p
        return "ok"

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        sreader: asyncio.StreamReader | None = None
        swriter: asyncio.StreamWriter | None = None
        try:
            while True:
                head = await _read_head(creader)
                if head is None:
                    return
                method = head.split(b" ", 1)[0].decode("latin-1")
                fate = self._fate(method)
                self.counts["requests"] += 1
                if fate == "reset":
                    self.counts["reset"] += 1
                    _reset(cwriter)
                    return
                if swriter is None:
                    sreader, swriter = await asyncio.wait_for(
                        asyncio.open_connection(self.upstream_host, self.upstream_port), IDLE_TIMEOUT)
                assert sreader is not None
                swriter.write(head)
                await _relay_body(creader, swriter, _headers(head))
                await swriter.drain()
                rhead = await _read_head(sreader)
                if rhead is None:
                    _reset(cwriter)
                    return
                status = int(rhead.split(b" ", 2)[1])
                body = await _read_body(sreader, _headers(rhead), method == "HEAD" or status in (204, 304)
                                        or 100 <= status < 200)
                if fate == "lost":
                    self.counts["lost"] += 1
                    _reset(cwriter)  # the server has answered; the phone never hears it
                    return
                if fate == "delay":
                    self.counts["delay"] += 1
                    await asyncio.sleep(self.faults.delay_s)
                cwriter.write(rhead + body)
                await cwriter.drain()
                self.counts["forwarded"] += 1
                if b"connection: close" in rhead.lower():
                    return
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
            _reset(cwriter)
        finally:
            if swriter is not None:
                swriter.close()
            if not cwriter.is_closing():
                cwriter.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), like a dropped mobile link, not a polite FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    except asyncio.LimitOverrunError as exc:
        raise ValueError("header too long") from exc


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            out[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return out


async def _relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      headers: dict[str, str]) -> None:
    writer.write(await _read_body(reader, headers, False, until_close=False))


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], empty: bool,
                     until_close: bool = True) -> bytes:
    if empty:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), IDLE_TIMEOUT)
            out += line
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    t = await asyncio.wait_for(reader.readuntil(b"\r\n"), IDLE_TIMEOUT)
                    out += t
                    if t == b"\r\n":
                        return bytes(out)
            out += await asyncio.wait_for(reader.readexactly(size + 2), IDLE_TIMEOUT)
    if "content-length" in headers:
        return await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), IDLE_TIMEOUT)
    if until_close:  # a response without framing ends when the server closes
        return await asyncio.wait_for(reader.read(), IDLE_TIMEOUT)
    return b""
