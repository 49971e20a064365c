"""A coterie component driven by JSON lines: the Python twin of ``interop/peer.js``.

    python -m bench.worker <role> '<json config>'

Design: the bench driver treats both implementations alike, so this script
speaks exactly the protocol of ``interop/peer.js`` (roles, config fields,
stdin commands, stdout events; see the header of that file) for the subset
the bench uses:

- config: ``name``, ``namespace``, ``key``, ``respondsTo``, ``discovery``
  (cote's camelCase names), ``firstContact``, ``quiet``, ``expect``,
  ``metrics`` (coterie only: the component keeps Prometheus metrics), and
  ``handler`` (coterie only: ``"async"`` makes the responder's echo an
  ``async def`` that never waits, instead of a plain function; ``"msgspec"``
  a typed one taking and returning msgspec Structs, ``bench/typed_handler.py``);
- stdin: ``bench``, ``publish_bench``, ``stats``, ``exit``;
- stdout: ``ready``, ``added``, ``bench``, ``first_contact``,
  ``published_bench``, ``received``, ``stats``, ``error``, ``closed``.

Responders echo ``{...req, by, pid}`` like peer.js. The event loop is uvloop
when it is installed, as a coterie user would run it. Nothing is logged per
request. Every wait is bounded by the driver, which kills the process if it
does not exit.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

import coterie
from bench import lines
from bench.lines import bench, commands, emit

ROLES = ("responder", "requester", "publisher", "subscriber")

_DISCOVERY_FIELDS = {
    "helloInterval": "hello_interval",
    "checkInterval": "check_interval",
    "nodeTimeout": "node_timeout",
    "masterTimeout": "master_timeout",
    "broadcast": "broadcast",
    "port": "port",
    "address": "address",
}


def discovery_options(config: dict[str, Any]) -> Any:
    """Build coterie DiscoveryOptions from peer.js-style camelCase config."""
    raw = config.get("discovery") or {}
    kwargs: dict[str, Any] = {"log": False}
    for camel, snake in _DISCOVERY_FIELDS.items():
        if camel in raw:
            kwargs[snake] = raw[camel]
    return coterie.DiscoveryOptions(**kwargs)


class Worker:
    """One component plus the command loop."""

    def __init__(self, role: str, config: dict[str, Any]) -> None:
        self.role = role
        self.config = config
        self.component: Any = None
        self.done = asyncio.Event()
        self.received = 0
        self.first_at = 0
        self.last_at = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    def _common(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"discovery": discovery_options(self.config)}
        for field in ("namespace", "key"):
            if self.config.get(field) is not None:
                kwargs[field] = self.config[field]
        if self.config.get("metrics"):
            kwargs["metrics"] = True
        return kwargs

    def _make(self) -> Any:
        name = self.config.get("name") or f"python {self.role}"
        common = self._common()
        if self.role == "responder":
            responder = coterie.Responder(name, **common)
            pid = os.getpid()

            def echo(req: dict[str, Any]) -> dict[str, Any]:
                return {**req, "by": name, "pid": pid}

            async def async_echo(req: dict[str, Any]) -> dict[str, Any]:
                return {**req, "by": name, "pid": pid}

            kind = self.config.get("handler")
            handler: Any = async_echo if kind == "async" else echo
            if kind == "msgspec":
                from bench.typed_handler import typed_echo

                handler = typed_echo(name, pid)
            for request_type in self.config.get("respondsTo") or ["echo"]:
                responder.on(request_type, handler)
            return responder
        if self.role == "requester":
            return coterie.Requester(name, **common)
        if self.role == "publisher":
            return coterie.Publisher(name=name, **common)
        subscriber = coterie.Subscriber(name=name, **common)
        for topic in self.config.get("subscribesTo") or ["tick"]:
            subscriber.on(topic, self._on_message)
        return subscriber

    def _on_message(self, *args: Any) -> None:
        self.received += 1
        self.last_at = time.perf_counter_ns()
        if self.received == 1:
            self.first_at = self.last_at
        expect = self.config.get("expect")
        if expect and self.received == expect:
            emit({"event": "received", **self._stats()})

    def _stats(self) -> dict[str, Any]:
        seconds = (self.last_at - self.first_at) / 1e9 if self.received else 0.0
        return {"count": self.received, "seconds": seconds}

    def _watch_nodes(self) -> None:
        component = self.component

        def listener(event: str, node: Any) -> None:
            if event == "added" and any(p.id == node.id for p in component.peers):
                emit({"event": "added", "advertisement": node.advertisement, "id": node.id})

        component.discovery.on(listener)

    async def run(self) -> None:
        created = time.perf_counter_ns()
        self.component = self._make()
        await self.component.start()
        self._watch_nodes()
        emit({"event": "ready", "pid": os.getpid(), "advertisement": self.component.advertisement})
        if self.role == "requester" and self.config.get("firstContact") is not None:
            self._spawn(self._first_contact(created))
        reader = asyncio.get_running_loop().create_task(self._read_stdin())
        try:
            await self.done.wait()
        finally:
            reader.cancel()
            for task in list(self.tasks):
                task.cancel()
            await self.component.close()
            emit({"event": "closed"})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            emit({"event": "error", "message": repr(task.exception())})

    async def _first_contact(self, created: int) -> None:
        fc = self.config["firstContact"]
        timeout = fc.get("timeout")
        err = None
        try:
            await self.component.send(
                fc.get("req") or {"type": "echo"},
                timeout=timeout / 1000 if timeout else None,
            )
        except Exception as exc:
            err = {"name": type(exc).__name__, "message": str(exc)}
        emit({"event": "first_contact", "ms": (time.perf_counter_ns() - created) / 1e6, "err": err})

    async def _read_stdin(self) -> None:
        async for cmd in commands(report_bad=True):
            self._handle(cmd)
        self.done.set()

    def _handle(self, cmd: dict[str, Any]) -> None:
        name = cmd.get("cmd")
        if name == "bench" and self.role == "requester":
            self._spawn(self._bench(cmd))
        elif name == "publish_bench" and self.role == "publisher":
            self._spawn(self._publish_bench(cmd))
        elif name == "stats" and self.role == "subscriber":
            emit({"event": "stats", **self._stats()})
            if cmd.get("reset"):
                self.received = self.first_at = self.last_at = 0
        else:
            emit({"event": "error", "message": f"command not understood by {self.role}: {cmd}"})

    async def _bench(self, cmd: dict[str, Any]) -> None:
        await bench(self.component.send, cmd.get("req") or {"type": "echo"}, cmd)

    async def _publish_bench(self, cmd: dict[str, Any]) -> None:
        n = int(cmd["n"])
        batch = max(1, int(cmd.get("batch") or 100))
        topic, data = cmd["topic"], cmd.get("data")
        publish = self.component.publish
        started = time.perf_counter_ns()
        sent = 0
        while sent < n:
            end = min(n, sent + batch)
            while sent < end:
                result = publish(topic, data)
                if asyncio.iscoroutine(result):
                    await result
                sent += 1
            await asyncio.sleep(0)
        emit(
            {
                "event": "published_bench",
                "n": n,
                "seconds": (time.perf_counter_ns() - started) / 1e9,
            }
        )


def _start(role: str, config: dict[str, Any]) -> Coroutine[Any, Any, None]:
    os.environ.setdefault("COTE_BROADCAST_ADDRESS", "127.255.255.255")
    return Worker(role, config).run()


def main(argv: list[str]) -> int:
    """Run one worker until ``exit`` or end of stdin."""
    return lines.main(argv, ROLES, _start)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
