"""Blocking clients for the bench: ``coterie.sync.Requester`` and grpc's synchronous stub.

    python -m bench.sync_client coterie-sync '{"key": "...", "discovery": {...}}'
    python -m bench.sync_client grpc-sync '{"port": 40123}'

Design: what a Flask or Django view does, many times over: T threads, each
calling a blocking ``send(req)`` after another until N are answered, with
the clock read around every call (:func:`drive_threads`, the threaded twin
of :func:`bench.drive.drive`). The process speaks the bench's JSON lines
(``ready``, ``added``, ``bench``, ``error``, ``closed``; stdin ``bench`` with
``concurrency`` as the thread count, and ``exit``) from a plain blocking
main thread: no asyncio of its own, as in a WSGI worker.

- ``coterie-sync``: one ``coterie.sync.Requester`` shared by every thread,
  on the bench's key and discovery; ``added`` once a first request is answered.
- ``grpc-sync``: one ``grpc.insecure_channel`` and one unary-unary callable
  shared by every thread (as grpc's documentation shows), against
  ``bench/peers.py``'s grpc server, JSON bytes in and out.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.lines import emit

ROLES = ("coterie-sync", "grpc-sync")


def drive_threads(
    send: Callable[[Any], Any],
    req: Any,
    n: int,
    threads: int,
    latencies: bool = False,
) -> dict[str, Any]:
    """Answer ``n`` requests from ``threads`` threads calling ``send(req)``; the ``bench`` event."""
    threads = max(1, min(threads, n))
    lat = [0.0] * n if latencies else None
    clock = time.perf_counter_ns
    lock = threading.Lock()
    state = {"next": 0, "errors": 0}

    def worker() -> None:
        errors = 0
        while True:
            with lock:
                i = state["next"]
                if i >= n:
                    break
                state["next"] = i + 1
            t0 = clock()
            try:
                send(req)
            except Exception:
                errors += 1
            if lat is not None:
                lat[i] = (clock() - t0) / 1000
        with lock:
            state["errors"] += errors

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    started = clock()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out: dict[str, Any] = {
        "event": "bench",
        "n": n,
        "errors": state["errors"],
        "seconds": (clock() - started) / 1e9,
    }
    if lat is not None:
        out["latencies_us"] = [round(v) for v in lat]
    return out


def _coterie_sync(config: dict[str, Any]) -> tuple[Callable[[Any], Any], Callable[[], None]]:
    import coterie.sync
    from bench.worker import discovery_options

    kwargs: dict[str, Any] = {"discovery": discovery_options(config), "timeout": 10.0}
    if config.get("key") is not None:
        kwargs["key"] = config["key"]
    requester = coterie.sync.Requester(config.get("name") or "coterie.sync requester", **kwargs)
    return requester.send, requester.close


def _grpc_sync(config: dict[str, Any]) -> tuple[Callable[[Any], Any], Callable[[], None]]:
    import grpc

    from bench.peers import GRPC_METHOD

    channel = grpc.insecure_channel(f"127.0.0.1:{int(config['port'])}")
    grpc.channel_ready_future(channel).result(timeout=15.0)
    call = channel.unary_unary(GRPC_METHOD)

    def send(req: Any) -> Any:
        return orjson.loads(call(orjson.dumps(req), timeout=10.0))

    return send, channel.close


def main(argv: list[str]) -> int:
    """Run one client role until ``exit`` or end of stdin; the exit code."""
    if not argv or argv[0] not in ROLES:
        emit({"event": "error", "message": f"role must be one of {', '.join(ROLES)}"})
        return 2
    os.environ.setdefault("COTE_BROADCAST_ADDRESS", "127.255.255.255")
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        send, close = (_coterie_sync if argv[0] == "coterie-sync" else _grpc_sync)(config)
        emit({"event": "ready", "pid": os.getpid()})
        send({"type": "echo"})  # waits until the responder is found and linked
        emit({"event": "added", "id": argv[0]})
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "exit":
                break
            if cmd.get("cmd") != "bench":
                emit({"event": "error", "message": f"command not understood: {cmd}"})
                continue
            emit(
                drive_threads(
                    send,
                    cmd.get("req") or {"type": "echo"},
                    int(cmd["n"]),
                    int(cmd.get("concurrency") or 1),
                    latencies=bool(cmd.get("latencies")),
                )
            )
        close()
    except Exception as exc:
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    emit({"event": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
