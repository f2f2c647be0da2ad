"""A TCP proxy between a service and its database, to cut or black-hole the traffic.

It runs its own event loop in a background thread, so any test (sync or async,
in-process or with a subprocess service) can drive it::

    proxy = Proxy("127.0.0.1", 5432)
    port = proxy.start()          # the service connects to 127.0.0.1:<port>
    proxy.cut()                   # RST every connection; refuse new ones (a server restart)
    proxy.blackhole()             # keep every socket open, drop every byte (a silent network drop)
    proxy.restore()               # traffic flows again
    proxy.stop()

``round_trips`` counts the server's ``ReadyForQuery`` messages (PostgreSQL's wire
protocol, unencrypted: ``?ssl=disable``): one per round trip the client waited for,
one per connection's start-up included; ``reset_counts()`` starts again.

``upstream_ports`` are the local ports of the proxy's connections to the server:
``pg_stat_activity.client_port`` names exactly the backends behind the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Proxy"]

T = TypeVar("T")

_BUFFER = 65536


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


class Proxy:
    """A cuttable TCP proxy listening on an ephemeral loopback port."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.connections_accepted = 0
        self.round_trips = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self._blackhole = False

    # -- control, from any thread -----------------------------------------------------

    def start(self) -> int:
        """Start listening; returns the port the service should connect to."""
        self._thread.start()
        self._call(self._listen())
        return self.port

    def stop(self) -> None:
        """Close every socket (RST) and the listener, end the thread."""
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self, *, refuse: bool = True, reset: bool = True) -> None:
        """Close every open connection (RST, or FIN when ``reset=False``).

        With ``refuse`` the listener closes too: new connections are refused, as by a
        server that is down. Without it, new connections are accepted and forwarded.
        """
        self._call(self._cut(refuse=refuse, reset=reset))

    def blackhole(self) -> None:
        """Keep every socket open but drop every byte, both ways; new connections too."""
        self._blackhole = True

    def restore(self) -> None:
        """Forward traffic again (listen again after a refusing cut)."""
        self._blackhole = False
        if self._server is None:
            self._call(self._listen())

    def reset_counts(self) -> None:
        """Zero ``connections_accepted`` and ``round_trips`` (between two measurements)."""
        self.connections_accepted = 0
        self.round_trips = 0

    @property
    def upstream_ports(self) -> set[int]:
        """Local ports of the open connections to the server."""
        return self._call(self._upstream_ports())

    def __enter__(self) -> Proxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop side ----------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self.port:  # listening again after a refusing cut: the same port
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )
            return
        # A port below the kernel's ephemeral range: while a refusing cut has the
        # listener closed, no outgoing connection (the proxy's own to the server, say)
        # can take it as its source port, which would make listening again fail.
        low = ephemeral_range()[0]
        for port in random.sample(range(max(1024, low - 12000), low), 200):
            try:
                self._server = await asyncio.start_server(
                    self._handle, "127.0.0.1", port, reuse_address=True
                )
            except OSError:
                continue
            self.port = port
            return
        raise RuntimeError("no free port below the ephemeral range")

    async def _upstream_ports(self) -> set[int]:
        ports = set()
        for link in self._links:
            if link.upstream is not None:
                sockname = link.upstream.get_extra_info("sockname")
                if sockname:
                    ports.add(sockname[1])
        return ports

    async def _shutdown(self) -> None:
        await self._cut(refuse=True)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _cut(self, *, refuse: bool, reset: bool = True) -> None:
        if refuse and self._server is not None:
            self._server.close()
            self._server = None
        links, self._links = list(self._links), set()
        for link in links:
            for task in link.tasks:
                task.cancel()
            for writer in link.writers():
                _close(writer, reset=reset)
        await asyncio.sleep(0)  # let the cancelled pumps finish

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted just before a refusing cut
            _close(writer, reset=True)
            return
        self.connections_accepted += 1
        link = _Link(writer)
        self._links.add(link)
        if self._blackhole:
            # Accept, then swallow: the client waits for a handshake that never comes.
            link.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
            with contextlib.suppress(Exception, asyncio.CancelledError):
                while await reader.read(_BUFFER):
                    pass
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self._links.discard(link)
            _close(writer, reset=True)
            return
        link.upstream = up_writer
        if link not in self._links:  # cut while connecting upstream
            _close(writer, reset=True)
            _close(up_writer, reset=True)
            return
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link, _ReadyCounter(self))),
        ]

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        counter: _ReadyCounter | None = None,
    ) -> None:
        try:
            while data := await reader.read(_BUFFER):
                if self._blackhole:
                    continue
                if counter is not None:
                    counter.feed(data)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if link in self._links:
                self._links.discard(link)
                for other in link.writers():
                    _close(other, reset=False)


class _ReadyCounter:
    """Frames the server-to-client stream (type byte, 4-byte length) and counts ``Z``.

    A server that answers an SSL request sends one bare byte first (``N``: no TLS);
    a stream that turns out to be TLS is not counted.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.buffer = b""
        self.first = True
        self.opaque = False

    def feed(self, data: bytes) -> None:
        if self.opaque:
            return
        buffer = self.buffer + data
        if self.first and buffer:
            self.first = False
            if buffer[:1] == b"S":  # TLS accepted: nothing readable follows
                self.opaque = True
                return
            if buffer[:1] == b"N":
                buffer = buffer[1:]
        while len(buffer) >= 5:
            length = struct.unpack("!I", buffer[1:5])[0]
            if len(buffer) < 1 + length:
                break
            if buffer[:1] == b"Z":
                self.proxy.round_trips += 1
            buffer = buffer[1 + length :]
        self.buffer = buffer


def _close(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort() if reset else writer.close()
