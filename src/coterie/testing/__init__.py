"""Test helpers for services built on coterie: a mesh in one event loop.

Design (after nameko's test helpers and httpx's ``MockTransport``): users
test their own responders and requesters without sockets, ports or waiting
for discovery.

- :class:`Mesh` runs any components on a :class:`MemoryNetwork`: links are
  in-process pipes that still carry real frames, and discovery is a hub on
  which every hello arrives within a loop turn. Everything a component does
  over TCP (routing, balancing, failover, pub/sub) works the same.
- :func:`call` runs a responder's handler for one request, as a requester
  would see the answer (JSON round trip, :class:`~coterie.RemoteError` for a
  failure), without any mesh at all.
- The pytest plugin (installed with coterie, see :mod:`coterie.testing.plugin`)
  gives each test a fresh ``coterie_mesh``.

Example (pytest-asyncio runs the coroutine)::

    import pytest


    @pytest.mark.asyncio
    async def test_validation(coterie_mesh):
        validator = coterie_mesh.responder("validation")
        validator.on("validate", lambda req: req["cardno"] == "4111111111111111")
        payment = coterie_mesh.requester("payment")
        async with validator, payment:
            assert await payment.send({"type": "validate", "cardno": "4111111111111111"})
"""

from __future__ import annotations

import contextlib
import inspect
from types import TracebackType
from typing import Any, Self, TypeVar

import orjson

from coterie.components.base import Component
from coterie.components.monitor import Monitor
from coterie.components.publisher import Publisher
from coterie.components.requester import Requester
from coterie.components.responder import Responder
from coterie.components.subscriber import Subscriber
from coterie.discovery.options import DiscoveryOptions
from coterie.errors import RemoteError
from coterie.protocol.codes import NO_HANDLER, refusal
from coterie.protocol.messages import error_payload, no_handler_message
from coterie.testing._memory import MemoryNetwork

__all__ = ["MemoryNetwork", "Mesh", "call"]

C = TypeVar("C", bound=Component)

#: Discovery settings for in-process meshes: hellos are instant anyway, and
#: these keep idle meshes quiet and silent nodes detected quickly.
_OPTIONS = {
    "hello_interval": 1000,
    "check_interval": 1000,
    "node_timeout": 3000,
    "master_timeout": 4000,
    "log": False,
}


class Mesh:
    """Components in one event loop, linked without sockets.

    Create components through the mesh (or pass ``network=mesh.network`` and
    ``discovery=mesh.discovery()`` yourself), start them (``async with``),
    and they find each other at once. Closing the mesh closes every component
    it made that is still running.

    Args:
        environ: The environment components read (see
            :mod:`coterie.settings`); empty by default, so a test does not
            depend on the shell's ``COTE_*`` variables.
    """

    def __init__(self, *, environ: dict[str, str] | None = None) -> None:
        self.network = MemoryNetwork()
        self.environ = {} if environ is None else dict(environ)
        self.components: list[Component] = []

    def discovery(self, **overrides: Any) -> DiscoveryOptions:
        """Discovery options for this mesh, with ``overrides``."""
        return DiscoveryOptions(**{**_OPTIONS, **overrides})

    def add(self, component_type: type[C], name: str | None = None, **kwargs: Any) -> C:
        """Create a component of ``component_type`` on this mesh."""
        kwargs.setdefault("network", self.network)
        kwargs.setdefault("discovery", self.discovery())
        kwargs.setdefault("environ", self.environ)
        component = component_type(name, **kwargs)
        self.components.append(component)
        return component

    def responder(self, name: str | None = None, **kwargs: Any) -> Responder:
        """A :class:`~coterie.Responder` on this mesh."""
        return self.add(Responder, name, **kwargs)

    def requester(self, name: str | None = None, **kwargs: Any) -> Requester:
        """A :class:`~coterie.Requester` on this mesh (5 s default bound)."""
        kwargs.setdefault("timeout", 5.0)
        return self.add(Requester, name, **kwargs)

    def publisher(self, name: str | None = None, **kwargs: Any) -> Publisher:
        """A :class:`~coterie.Publisher` on this mesh."""
        return self.add(Publisher, name, **kwargs)

    def subscriber(self, name: str | None = None, **kwargs: Any) -> Subscriber:
        """A :class:`~coterie.Subscriber` on this mesh."""
        return self.add(Subscriber, name, **kwargs)

    def monitor(self, name: str | None = None, **kwargs: Any) -> Monitor:
        """A :class:`~coterie.Monitor` on this mesh."""
        return self.add(Monitor, name, **kwargs)

    async def start(self) -> None:
        """Start every component made so far."""
        for component in self.components:
            await component.start()

    async def close(self) -> None:
        """Close every component made on this mesh, last made first."""
        for component in reversed(self.components):
            with contextlib.suppress(Exception):
                await component.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def call(responder: Responder, request: dict[str, Any]) -> Any:
    """Run ``responder``'s handler for ``request`` and answer as a requester would.

    The request and the result go through a JSON round trip, so a value that
    could not cross the wire fails here too. No socket, no discovery; the
    responder need not be started.

    Raises:
        RemoteError: The handler raised, or no handler serves the type (the
            same error a remote caller would get).
        TypeError: The result cannot be sent as JSON.
    """
    request = orjson.loads(orjson.dumps(request))
    handler = responder.handler(request.get("type"))
    if handler is None:
        message = no_handler_message(responder.name, request.get("type"))
        raise RemoteError(refusal(NO_HANDLER, message))
    try:
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
    except RemoteError as exc:  # sent as it is, as a responder sends it
        if not exc.payload:
            raise RemoteError(error_payload(exc)) from exc
        raise RemoteError(orjson.loads(orjson.dumps(exc.payload))) from exc
    except Exception as exc:
        raise RemoteError(error_payload(exc)) from exc
    return orjson.loads(orjson.dumps(result))
