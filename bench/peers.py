"""The libraries a user would pick instead of coterie, doing the bench's job.

    python -m bench.peers zmq-server '{}'
    python -m bench.peers zmq-client '{"port": 40123}'
    python -m bench.peers grpc-server '{}'
    python -m bench.peers grpc-client '{"port": 40123}'

Design: each peer serves exactly what coterie's bench responder serves,
between two processes on loopback: the client encodes the request dict as
JSON, the server decodes it, answers ``{...req, by, pid}`` as JSON, and the
client decodes the reply (orjson on both sides, as coterie). Each is written
the way its documentation shows, with no tuning beyond that:

- pyzmq: a ``ROUTER`` server and a ``DEALER`` client on ``zmq.asyncio``;
  a request is ``[id, json]``, the server answers ``[id, json]`` to the
  sender's identity, and the client matches replies to futures by id (one
  reader task), so many requests share the one socket as in coterie;
- grpc.aio: one unary-unary method on a generic handler with bytes in and
  out (no protobuf: JSON bytes, like the others), one channel per client.

Both roles speak the JSON-lines protocol of ``bench/echo.py`` (``ready``
with the server's ``port``, ``added``, ``bench``, ``error``, ``closed``;
stdin ``bench`` and ``exit``), and the client is timed by the same loop as
coterie's requester (:func:`bench.drive.drive`). Servers listen on 127.0.0.1
only. The event loop is uvloop when installed, as for coterie.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench import lines
from bench.lines import bench_commands, commands, emit, loop_name

ROLES = ("zmq-server", "zmq-client", "grpc-server", "grpc-client")
#: The gRPC method every peer client calls.
GRPC_METHOD = "/bench.Echo/Echo"


def answer(payload: bytes, name: str, pid: int) -> bytes:
    """What every server does with a request: ``{...req, by, pid}`` as JSON."""
    return orjson.dumps({**orjson.loads(payload), "by": name, "pid": pid})


async def _serve_until_exit(port: int, close: Callable[[], Awaitable[None]]) -> None:
    emit({"event": "ready", "pid": os.getpid(), "port": port, "loop": loop_name()})
    async for _ in commands():
        pass
    await close()
    emit({"event": "closed"})


async def _client_until_exit(
    name: str, send: Callable[..., Awaitable[Any]], close: Callable[[], Awaitable[None]]
) -> None:
    emit({"event": "ready", "pid": os.getpid(), "loop": loop_name()})
    emit({"event": "added", "id": name})
    await bench_commands(send, lambda cmd: cmd.get("req") or {"type": "echo"}, name)
    await close()
    emit({"event": "closed"})


# -- pyzmq -------------------------------------------------------------------


async def zmq_server(config: dict[str, Any]) -> None:
    """A ROUTER that answers every ``[identity, id, json]`` with ``[identity, id, reply]``."""
    import zmq
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    name, pid = "pyzmq server", os.getpid()

    async def serve() -> None:
        while True:
            identity, request_id, payload = await sock.recv_multipart()
            await sock.send_multipart((identity, request_id, answer(payload, name, pid)))

    server = asyncio.get_running_loop().create_task(serve())

    async def close() -> None:
        server.cancel()
        sock.close()
        ctx.term()

    await _serve_until_exit(port, close)


async def zmq_client(config: dict[str, Any]) -> None:
    """A DEALER with many requests in flight, replies matched to futures by id."""
    import zmq
    import zmq.asyncio

    loop = asyncio.get_running_loop()
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{int(config['port'])}")
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    ids = itertools.count()

    async def read() -> None:
        while True:
            request_id, payload = await sock.recv_multipart()
            future = waiting.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(payload)

    reader = loop.create_task(read())

    async def send(req: Any, timeout: float | None = None) -> Any:
        request_id = str(next(ids)).encode()
        future = loop.create_future()
        waiting[request_id] = future
        await sock.send_multipart((request_id, orjson.dumps(req)))
        try:
            return orjson.loads(await asyncio.wait_for(future, timeout))
        finally:
            waiting.pop(request_id, None)

    async def close() -> None:
        reader.cancel()
        sock.close()
        ctx.term()

    await _client_until_exit(f"pyzmq 127.0.0.1:{config['port']}", send, close)


# -- grpc.aio ----------------------------------------------------------------


async def grpc_server(config: dict[str, Any]) -> None:
    """One unary-unary method, bytes in and out, on a grpc.aio server."""
    import grpc

    name, pid = "grpc server", os.getpid()

    async def echo(payload: bytes, context: Any) -> bytes:
        return answer(payload, name, pid)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def close() -> None:
        await server.stop(grace=None)

    await _serve_until_exit(port, close)


async def grpc_client(config: dict[str, Any]) -> None:
    """One channel; each request a unary call with the JSON request as its bytes."""
    import grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{int(config['port'])}")
    await asyncio.wait_for(channel.channel_ready(), 15.0)
    call = channel.unary_unary(GRPC_METHOD)

    async def send(req: Any, timeout: float | None = None) -> Any:
        return orjson.loads(await call(orjson.dumps(req), timeout=timeout))

    async def close() -> None:
        await channel.close()

    await _client_until_exit(f"grpc 127.0.0.1:{config['port']}", send, close)


_STARTS = {
    "zmq-server": zmq_server,
    "zmq-client": zmq_client,
    "grpc-server": grpc_server,
    "grpc-client": grpc_client,
}


def main(argv: list[str]) -> int:
    """Run one peer role until ``exit`` or end of stdin."""
    return lines.main(argv, ROLES, lambda role, config: _STARTS[role](config))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
