"""A degraded link between an edge and the province, from real kernel pieces, for tests and the benchmark.

Two network namespaces joined by a veth pair; ``tc tbf`` limits the rate on both ends, ``nft`` drops a share
of incoming packets on both ends, and a small asyncio relay adds latency and counts bytes. The stores stay on
loopback in the root namespace; the relay owns one socket in each namespace (``setns`` per socket), so the
only path from the edge's replicator to the province is across the veth:

    edge replicator → 127.0.0.1:<relay port>  ─delay─→  [edge ns] ══ veth (tbf, loss) ══ [province ns] →
    127.0.0.1:<province port>

This kernel has no netem (docs/design.md §6), hence the user-space delay. Byte counts are TCP payload
through the relay; ``wire_bytes`` reads the veth counters (headers and retransmissions included).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be created here (not root, no iproute2/nft, or a restricted container)."""


def _run(*args: str) -> None:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Switch the calling thread into a named network namespace for the block (its sockets stay there)."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name})")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


@dataclass
class Counters:
    up: dict[int, int] = field(default_factory=dict)      # phase → bytes edge → province
    down: dict[int, int] = field(default_factory=dict)    # phase → bytes province → edge
    connections: int = 0
    failed_connects: int = 0


class Link:
    """The namespaces, the shaped veth and the relay. Use as a context manager; always cleans up."""

    def __init__(self, province_port: int, *, rate: str = "100kbit", loss_percent: int = 5,
                 one_way_delay: float = 0.15) -> None:
        self.tag = f"{os.getpid() % 1000:03d}{random.randrange(4096):03x}"
        self.ns_edge, self.ns_prov = f"cce{self.tag}", f"ccp{self.tag}"
        self.if_edge, self.if_prov = f"vee{self.tag}", f"vep{self.tag}"
        net = random.randrange(0, 256)
        host = random.randrange(0, 64) * 4
        self.ip_edge, self.ip_prov = f"10.213.{net}.{host + 1}", f"10.213.{net}.{host + 2}"
        self.province_port = province_port
        self.rate, self.loss, self.delay = rate, loss_percent, one_way_delay
        self.relay_port = 0
        self.phase = 0
        self.counters = Counters()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._created: list[str] = []

    # --- kernel side ---
    @staticmethod
    def check() -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        for tool in ("ip", "tc", "nft"):
            if shutil.which(tool) is None:
                raise NetnsUnavailable(f"'{tool}' is not installed (Debian: iproute2, nftables)")

    def _setup_kernel(self) -> None:
        try:
            _run("ip", "netns", "add", self.ns_edge)
            self._created.append(self.ns_edge)
            _run("ip", "netns", "add", self.ns_prov)
            self._created.append(self.ns_prov)
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from exc
        _run("ip", "link", "add", self.if_edge, "type", "veth", "peer", "name", self.if_prov)
        _run("ip", "link", "set", self.if_edge, "netns", self.ns_edge)
        _run("ip", "link", "set", self.if_prov, "netns", self.ns_prov)
        ends = ((self.ns_edge, self.if_edge, self.ip_edge), (self.ns_prov, self.if_prov, self.ip_prov))
        for ns, dev, ip in ends:
            _run("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "link", "set", dev, "up")
            # A burst below the MTU silently drops full packets (docs/design.md §6): 16kb.
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                 "rate", self.rate, "burst", "16kb", "latency", "500ms")
            if self.loss:
                _run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "lossy")
                _run("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "lossy", "in",
                     "{ type filter hook input priority 0 ; policy accept ; }")
                _run("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "lossy", "in", "iifname", dev,
                     "numgen", "random", "mod", "100", "lt", str(self.loss), "drop")

    def cut(self) -> None:
        """Take the link down (the edge end; the peer sees no carrier)."""
        _run("ip", "-n", self.ns_edge, "link", "set", self.if_edge, "down")

    def restore(self) -> None:
        _run("ip", "-n", self.ns_edge, "link", "set", self.if_edge, "up")

    def wire_bytes(self) -> dict[str, int]:
        """veth counters on the edge end: tx = edge → province, rx = province → edge (IP headers included)."""
        out = subprocess.run(["ip", "-n", self.ns_edge, "-s", "-j", "link", "show", self.if_edge],
                             capture_output=True, text=True, timeout=10).stdout
        stats = json.loads(out)[0]["stats64"]
        return {"tx": int(stats["tx"]["bytes"]), "rx": int(stats["rx"]["bytes"])}

    # --- relay ---
    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool, delay: float
                    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        task = asyncio.ensure_future(sender())
        try:
            while True:
                chunk = await reader.read(65536)
                if up:
                    self.counters.up[self.phase] = self.counters.up.get(self.phase, 0) + len(chunk)
                else:
                    self.counters.down[self.phase] = self.counters.down.get(self.phase, 0) + len(chunk)
                await queue.put((time.monotonic() + delay, chunk))
                if not chunk:
                    break
            await task
        except (OSError, asyncio.CancelledError):
            task.cancel()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _edge_side(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accepted from the edge replicator on loopback; connect across the veth from inside the edge ns."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._edge_side_inner(reader, writer)

    async def _edge_side_inner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        with in_netns(self.ns_edge):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (self.ip_prov, 8000)), 20)
            r2, w2 = await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError):
            self.counters.failed_connects += 1
            sock.close()
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, w2, True, self.delay),
                             self._pipe(r2, writer, False, self.delay))

    async def _start_relay(self) -> None:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        self.relay_port = lsock.getsockname()[1]
        with in_netns(self.ns_prov):
            psock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        psock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        psock.bind((self.ip_prov, 8000))
        self._servers.append(await asyncio.start_server(self._edge_side, sock=lsock))
        self._servers.append(await asyncio.start_server(self._province_side, sock=psock))

    async def _province_side(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._province_side_inner(reader, writer)

    async def _province_side_inner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", self.province_port)
        except OSError:
            writer.close()
            return

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
                with contextlib.suppress(OSError):
                    dst.write_eof()
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    dst.close()

        await asyncio.gather(copy(reader, w2), copy(r2, writer))

    def __enter__(self) -> Link:
        self.check()
        try:
            self._setup_kernel()
            ready = threading.Event()
            errors: list[BaseException] = []

            def run() -> None:
                loop = asyncio.new_event_loop()
                self._loop = loop
                try:
                    loop.run_until_complete(self._start_relay())
                except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                    errors.append(exc)
                    ready.set()
                    return
                ready.set()
                loop.run_forever()
                loop.close()

            self._thread = threading.Thread(target=run, daemon=True, name=f"link-{self.tag}")
            self._thread.start()
            ready.wait(10)
            if errors:
                raise errors[0]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop is not None:
            loop = self._loop

            async def shutdown() -> None:
                for s in self._servers:
                    s.close()
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                loop.stop()

            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(shutdown()))
            if self._thread is not None:
                self._thread.join(5)
            self._loop = None
        for ns in reversed(self._created):  # deleting a namespace deletes its veth end and the peer
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run("ip", "netns", "del", ns)
        self._created.clear()

    @property
    def url(self) -> str:
        """The province as the edge's replicator sees it: through the degraded link."""
        return f"http://127.0.0.1:{self.relay_port}"


@contextlib.contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    from core.services import free_port

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
