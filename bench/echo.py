"""A bare uvloop echo of 4-byte length-prefixed messages: the Python ceiling.

    python -m bench.echo server '{}'
    python -m bench.echo client '{"port": 40123, "size": 68}'

Design: the request/response rows compare coterie with what two Python
processes on uvloop can do at all over loopback TCP, with no JSON, no AMP
framing and no routing. The server is an ``asyncio.Protocol`` that splits the
stream into messages (a 4-byte big-endian length, then that many bytes) and
writes every complete message of one read back in one ``write``, as coterie's
responder corks its replies to one read. The client keeps C requests in
flight with the very loop that times coterie (:func:`bench.drive.drive`):
each request is a future, answered in order (the server echoes in order, so
no id is needed), and its writes follow coterie's link policy: the first
message of a loop turn leaves at once, the rest of the turn in one ``write``.
So the echo pays what any awaitable request API on uvloop must pay (a
coroutine step and a future per request, two cross-process wake-ups on
loopback) and nothing else. With ``"batch": false`` in the config (both
roles) every message is written on its own instead: a floor for comparison,
not what the bench reports.

Both roles speak the JSON-lines protocol of ``bench/worker.py`` for the part
the request/response scenario uses: stdout ``ready`` (the server's with its
``port``), ``added`` (the client is connected), ``bench``, ``error``,
``closed``; stdin ``bench`` (``n``, ``concurrency``, ``latencies``,
``completions``; ``req`` is ignored: the client sends ``size`` bytes) and
``exit``. Nothing here imports coterie, so the echo runs beside any coterie
tree. The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
from collections import deque
from typing import Any

from bench import lines
from bench.lines import bench_commands, commands, emit, loop_name

ROLES = ("server", "client")
_HEAD = struct.Struct(">I")
#: A length above this is a broken stream, not a message.
MAX_MESSAGE = 1 << 24


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def split(data: bytes, spans: list[tuple[int, int]] | None = None) -> int:
    """Where the complete messages at the start of ``data`` end.

    Args:
        data: Received bytes, starting at a message boundary.
        spans: When given, gets the (start, end) of each complete payload.

    Raises:
        ValueError: On a length above :data:`MAX_MESSAGE`.
    """
    off, n = 0, len(data)
    unpack = _HEAD.unpack_from
    while n - off >= 4:
        (size,) = unpack(data, off)
        if size > MAX_MESSAGE:
            raise ValueError(f"message of {size} bytes")
        end = off + 4 + size
        if end > n:
            break
        if spans is not None:
            spans.append((off + 4, end))
        off = end
    return off


def message(size: int) -> bytes:
    """One request: the length prefix and ``size`` payload bytes."""
    return _HEAD.pack(size) + b"x" * size


class EchoServer(asyncio.Protocol):
    """Writes every complete message of a read back in one write (or each alone)."""

    def __init__(self, batch: bool = True) -> None:
        self.transport: asyncio.Transport | None = None
        self._rest = b""
        self._batch = batch

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        spans: list[tuple[int, int]] | None = None if self._batch else []
        try:
            end = split(data, spans)
        except ValueError:
            assert self.transport is not None
            self.transport.abort()
            return
        assert self.transport is not None
        if spans is not None:
            for start, stop in spans:
                self.transport.write(data[start - 4 : stop])
        elif end:
            self.transport.write(data if end == len(data) else data[:end])
        self._rest = data[end:] if end < len(data) else b""


class EchoClient(asyncio.Protocol):
    """Sends messages and resolves one future per reply, in order."""

    def __init__(self, batch: bool = True) -> None:
        self.transport: asyncio.Transport | None = None
        self._batch = batch
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._waiters: deque[asyncio.Future[bytes]] = deque()
        self._rest = b""
        self._out: list[bytes] = []
        self._flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _nodelay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionResetError("echo server closed the connection")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        if not self.lost.done():
            self.lost.set_result(None)

    def request(self, msg: bytes, timeout: float | None = None) -> asyncio.Future[bytes]:
        """Send ``msg``; the future gets the echoed payload (``timeout`` is not enforced)."""
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        self._write(msg)
        return waiter

    def _write(self, msg: bytes) -> None:
        # coterie's link policy: the first message of a loop turn leaves at
        # once, the rest of the turn together at its end.
        if self._flush_scheduled:
            self._out.append(msg)
            return
        assert self.transport is not None
        self.transport.write(msg)
        if not self._batch:
            return
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        spans: list[tuple[int, int]] = []
        try:
            end = split(data, spans)
        except ValueError:
            assert self.transport is not None
            self.transport.abort()
            return
        waiters = self._waiters
        for start, stop in spans:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(data[start:stop])
        self._rest = data[end:] if end < len(data) else b""


async def serve(config: dict[str, Any]) -> None:
    """The server role: listen on loopback until ``exit``."""
    loop = asyncio.get_running_loop()
    batch = bool(config.get("batch", True))
    server = await loop.create_server(
        lambda: EchoServer(batch), "127.0.0.1", int(config.get("port") or 0)
    )
    port = server.sockets[0].getsockname()[1]
    emit({"event": "ready", "pid": os.getpid(), "port": port, "loop": loop_name()})
    async for _ in commands():
        pass
    server.close()
    emit({"event": "closed"})


async def client(config: dict[str, Any]) -> None:
    """The client role: connect, then run ``bench`` commands until ``exit``."""
    loop = asyncio.get_running_loop()
    port = int(config["port"])
    msg = message(int(config.get("size") or 64))
    batch = bool(config.get("batch", True))
    transport, proto = await loop.create_connection(lambda: EchoClient(batch), "127.0.0.1", port)
    emit({"event": "ready", "pid": os.getpid(), "loop": loop_name()})
    emit({"event": "added", "id": f"echo 127.0.0.1:{port}"})
    await bench_commands(proto.request, lambda cmd: msg, "the echo")
    transport.close()
    emit({"event": "closed"})


def main(argv: list[str]) -> int:
    """Run one echo role until ``exit`` or end of stdin."""
    return lines.main(
        argv, ROLES, lambda role, config: (serve if role == "server" else client)(config)
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
