"""The Sockend component: its life cycle, the components it runs, and the socket.io glue.

Design: :class:`Sockend` is a :class:`~coterie.components.base.Component`
that pairs with nothing. Discovery's node events go to its
:class:`~coterie.gateways.sockend._spaces.Spaces` (the namespace
bookkeeping), which asks it to serve a socket.io namespace, start a
requester or subscriber, or stop them. A client's event is shaped and
refused by the pure rules of :mod:`coterie.protocol.sockend`; this module
only awaits: the transformers, the requester's start and its answer, and
the emits of one relay task. See :mod:`coterie.gateways.sockend` for what
the gateway does and where it differs from cote's.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from coterie.components.base import Component
from coterie.components.subscriber import Subscriber
from coterie.errors import CoterieError, NotRunningError, RemoteError
from coterie.gateways.sockend._spaces import Space, Spaces, gateway_requester
from coterie.protocol.codes import CLOSED, FAILED, NO_HANDLER, REJECTED, TIMEOUT
from coterie.protocol.namespaces import Namespace
from coterie.protocol.nodes import Node
from coterie.protocol.sockend import (
    RESERVED_KEYS,
    SOCKETIO_RESERVED,
    Refused,
    failure,
    request_from,
    socketio_namespace,
    split_rooms,
)
from coterie.transport.timer import Alarm

__all__ = [
    "DEFAULT_MAX_NAMESPACES",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_REQUEST_TIMEOUT",
    "Sockend",
    "Transformer",
    "socketio_app",
]

log = logging.getLogger("coterie.sockend")

#: Seconds a forwarded request may take, waiting for a responder included.
DEFAULT_REQUEST_TIMEOUT = 10.0
#: Largest client payload forwarded, in bytes of JSON.
DEFAULT_MAX_PAYLOAD = 64 * 1024
#: Most published events waiting to be emitted to clients.
DEFAULT_RELAY_QUEUE = 10_000
#: Most namespaces served at once, besides the default one and those listed.
DEFAULT_MAX_NAMESPACES = 64

#: What a requester's send may raise besides RemoteError: refused with its code.
_SEND_ERRORS = (CoterieError, TimeoutError, TypeError, ValueError, RuntimeError, ConnectionError)

#: ``transformer(request, sid, namespace)``: may change the request in place,
#: or raise to refuse it (the message goes to the client). Plain or async.
Transformer = Callable[[dict[str, Any], str, str], Awaitable[None] | None]


def socketio_app(io: Any) -> web.Application:
    """An aiohttp application serving the socket.io server ``io`` at ``/socket.io/``."""
    app = web.Application()
    io.attach(app)
    return app


class Sockend(Component):
    """Exposes responders and publishers of the mesh to socket.io clients.

    Args:
        io: The ``socketio.AsyncServer`` to serve on; a new one (aiohttp mode)
            when ``None``. Handlers the application registers for specific
            events take precedence; the Sockend registers a ``*`` catch-all
            per socket.io namespace and leaves an existing one alone.
        name: Name shown to peers.
        key: Only nodes with this advertisement key are exposed (and the
            requesters and subscribers the Sockend starts use it).
        namespaces: cote namespaces to serve from the start (``None`` for
            the default one), so clients may connect before discovery finds
            their responders; ``/`` is always served. Others are served when
            discovered.
        request_timeout: Seconds each forwarded request may take, waiting
            for a responder included.
        max_payload: Largest client payload forwarded, in bytes of JSON.
        max_waiting: Most forwarded requests that may wait for a responder
            at once, per namespace.
        relay_queue: Most published events waiting to be emitted.
        max_namespaces: Most namespaces served at once besides the default
            one and those in ``namespaces``; one announced past it is
            ignored with a warning. Each served namespace runs a requester
            and/or a subscriber, closed once no node of it has been seen for
            the discovery's ``node_timeout``.
        **kwargs: See :class:`~coterie.components.base.Component`
            (``environment``, ``discovery``, ``advertisement``, ...).
    """

    role = "sockend"

    def __init__(
        self,
        io: Any = None,
        name: str | None = None,
        *,
        key: str | None = None,
        namespaces: Iterable[str | None] = (),
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_waiting: int = 1000,
        relay_queue: int = DEFAULT_RELAY_QUEUE,
        max_namespaces: int = DEFAULT_MAX_NAMESPACES,
        **kwargs: Any,
    ) -> None:
        if isinstance(max_namespaces, bool) or not isinstance(max_namespaces, int):
            raise TypeError(f"max_namespaces must be an int, got {max_namespaces!r}")
        if max_namespaces < 0:
            raise ValueError(f"max_namespaces must be 0 or more, got {max_namespaces}")
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be positive seconds, got {request_timeout!r}")
        if not isinstance(max_payload, int) or max_payload <= 0:
            raise ValueError(f"max_payload must be a positive number of bytes, got {max_payload!r}")
        if kwargs.get("namespace") is not None:
            raise ValueError("a Sockend serves every namespace: pass namespaces=, not namespace=")
        kwargs.pop("namespace", None)
        super().__init__(name or "sockend", key=key, **kwargs)
        self.io: Any = io if io is not None else socketio.AsyncServer(async_mode="aiohttp")
        self.key = key
        self.environment: str | None = kwargs.get("environment")
        self.request_timeout = float(request_timeout)
        self.max_payload = max_payload
        self.max_waiting = max_waiting
        self.relay_queue = relay_queue
        #: Called on every request before it is forwarded (cote's requesterTransformators).
        self.transformers: list[Transformer] = []
        namespaces = list(namespaces)
        self.max_namespaces = max_namespaces
        #: The namespace bookkeeping; the default namespace and those listed
        #: are never closed nor counted against ``max_namespaces``.
        self._spaces = Spaces(
            self,
            self.advertisement,
            max_namespaces=max_namespaces,
            pinned=(None, *namespaces),
            initial=[socketio_namespace(None), *(socketio_namespace(n) for n in namespaces)],
        )
        self._served: set[str] = set()
        self._catch_alls: dict[str, Callable[..., Awaitable[tuple[Any, ...]]]] = {}
        self._reaper = Alarm(self._check_spaces)
        self._closing_spaces: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[str, str, Any, list[str] | None]] | None = None
        self._relayer: asyncio.Task[None] | None = None
        self._change = asyncio.Event()
        #: Requests forwarded to a responder (answered or not).
        self.forwarded = 0
        #: Requests answered by the Sockend itself with an error.
        self.refused = 0
        #: Published events emitted to socket.io clients.
        self.relayed = 0

    @property
    def namespaces_closed(self) -> int:
        """Namespaces closed because no node of theirs was seen for the node timeout."""
        return self._spaces.closed

    @property
    def namespaces_refused(self) -> int:
        """Announcements of a namespace ignored because ``max_namespaces`` were served."""
        return self._spaces.refused

    # -- public ----------------------------------------------------------------

    def add_transformer(self, transformer: Transformer) -> Transformer:
        """Register a transformer; usable as a decorator.

        ``transformer(request, sid, namespace)`` runs on every request after
        the client's reserved keys are removed; it may change the request
        (e.g. add the user from the session, or a ``__subset``) or raise to
        refuse it, the exception's message going to the client.
        """
        if not callable(transformer):
            raise TypeError("a transformer must be callable")
        self.transformers.append(transformer)
        return transformer

    def exposed(self, namespace: str | None = None) -> list[str]:
        """Request types currently forwarded on a cote namespace's socket.io namespace."""
        types: set[str] = set()
        for space in self._spaces.served_on(socketio_namespace(namespace)):
            types |= space.types()
        return sorted(types)

    def namespaces(self) -> list[Namespace]:
        """The cote namespaces the Sockend runs a requester or subscriber for now."""
        spaces = self._spaces.by_namespace
        return [ns for ns, space in spaces.items() if space.requester or space.subscriber]

    def relays(self, namespace: str | None = None) -> list[str]:
        """Event names currently relayed on a cote namespace's socket.io namespace."""
        names: set[str] = set()
        for space in self._spaces.served_on(socketio_namespace(namespace)):
            names |= frozenset[str]().union(*space.publishers.values())
        return sorted(names)

    async def wait_exposed(
        self, types: Iterable[str], namespace: str | None = None, timeout: float = 10.0
    ) -> None:
        """Wait until every request type of ``types`` is exposed on a cote namespace.

        Raises:
            TimeoutError: When they are not within ``timeout`` seconds.
        """
        wanted = set(types)
        async with asyncio.timeout(timeout):
            while not wanted <= set(self.exposed(namespace)):
                self._change.clear()
                await self._change.wait()

    async def wait_ready(self, namespace: str | None = None, timeout: float = 10.0) -> None:
        """Wait until requests and relays of a cote namespace are linked.

        Handy in tests and at start-up: waits for at least one linked
        responder when a responder was discovered there, and one linked
        publisher when a publisher was.

        Raises:
            TimeoutError: When that does not happen within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while (space := self._spaces.by_namespace.get(namespace)) is None or not (
                space.requester or space.subscriber
            ):
                self._change.clear()
                await self._change.wait()
            if space.requester_ready is not None and space.requester is not None:
                await asyncio.shield(space.requester_ready)
                await space.requester.wait_connected(1, timeout)
            if space.subscriber_ready is not None and space.subscriber is not None:
                await asyncio.shield(space.subscriber_ready)
                await space.subscriber.wait_connected(1, timeout)

    # -- lifecycle -------------------------------------------------------------

    async def _bind(self) -> None:
        assert self.discovery_settings is not None
        self._spaces.start(self.discovery_settings.node_timeout / 1000)
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.relay_queue)
        self._relayer = loop.create_task(
            self._relay_loop(self._queue), name="coterie-sockend-relay"
        )
        for sio_ns in self._spaces.initial:
            self._serve(sio_ns)
        self._reaper.after(self.discovery_settings.check_interval / 1000)

    async def _shutdown(self) -> None:
        self._reaper.cancel()
        spaces = list(self._spaces.by_namespace.values())
        self._spaces.by_namespace.clear()
        if self._closing_spaces:
            await asyncio.gather(*self._closing_spaces, return_exceptions=True)
        for space in spaces:
            for task in (space.requester_ready, space.subscriber_ready):
                if task is not None:
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await task
            for component in (space.requester, space.subscriber):
                if component is not None:
                    with contextlib.suppress(Exception):
                        await component.close()

    async def _unbind(self) -> None:
        self._reaper.cancel()  # start failed after _bind
        if self._relayer is not None:
            self._relayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relayer
            self._relayer = None
        self._queue = None

    # -- discovery ---------------------------------------------------------------

    def _foreign_node(self, event: str, node: Node) -> None:
        self._spaces.note(event, node, opening=not self._closing)
        self._change.set()

    def _check_spaces(self) -> None:
        """Timer: close idle namespaces, admit waiting ones, sum up refusals."""
        if self._closing or self.discovery_settings is None:
            return
        nodes = list(self.discovery.nodes.values()) if self.discovery is not None else []
        self._spaces.check(nodes, time.monotonic())
        self._reaper.after(self.discovery_settings.check_interval / 1000)

    # -- the components of each namespace ----------------------------------------------

    def _stop_space(self, space: Space) -> None:
        """Stop a closed namespace's requester and subscriber (in a task)."""
        task = asyncio.get_running_loop().create_task(
            self._stopped(space), name=f"coterie-sockend-close-{space.sio_ns}"
        )
        self._closing_spaces.add(task)
        task.add_done_callback(self._closing_spaces.discard)
        self._change.set()

    @staticmethod
    async def _stopped(space: Space) -> None:
        for task in (space.requester_ready, space.subscriber_ready):
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(task)
        for component in (space.requester, space.subscriber):
            if component is not None:
                try:
                    await component.close()
                except Exception:
                    log.exception("could not close %r", component)

    def _component_kwargs(self, space: Space) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "namespace": space.namespace,
            "key": self.key,
            "environment": self.environment,
            "environ": self._environ,
            "discovery": self._options,
            "max_frame_size": self.max_frame_size,
            "transport_factory": self._transport_factory,
            "network": self.network,
        }
        kwargs["tls"], kwargs["secret"] = self.tls_config
        return kwargs

    def _start_requester(self, space: Space) -> None:
        requester = gateway_requester(
            f"{self.name} requester",
            timeout=self.request_timeout,
            max_waiting=self.max_waiting,
            **self._component_kwargs(space),
        )
        space.requester = requester
        space.requester_ready = self._start(requester)
        self._change.set()
        log.info("exposing responders of namespace %r on %s", space.namespace, space.sio_ns)

    def _start_subscriber(self, space: Space) -> None:
        subscriber = Subscriber(
            f"{self.name} subscriber", subscribes_to=["*"], **self._component_kwargs(space)
        )
        subscriber.on("**", lambda event, data: self._published(space, event, data))
        space.subscriber = subscriber
        space.subscriber_ready = self._start(subscriber)
        self._change.set()
        log.info("relaying publishers of namespace %r on %s", space.namespace, space.sio_ns)

    def _start(self, component: Component) -> asyncio.Task[None]:
        async def start() -> None:
            try:
                await component.start()
            except Exception:
                log.exception("could not start %r", component)
                raise

        task = asyncio.get_running_loop().create_task(start(), name=f"coterie-start-{component}")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # mark retrieved
        return task

    # -- socket.io -> mesh ---------------------------------------------------------

    def _serve(self, sio_ns: str) -> None:
        if sio_ns in self._served:
            return
        self._served.add(sio_ns)
        existing = getattr(self.io, "handlers", {}).get(sio_ns, {})
        if "*" in existing:
            log.warning(
                "socket.io namespace %s already has a catch-all handler; the Sockend leaves "
                "it alone and forwards nothing there",
                sio_ns,
            )
            return

        async def catch_all(event: str, sid: str, *args: Any) -> tuple[Any, ...]:
            return await self.handle(sio_ns, event, sid, *args)

        self.io.on("*", catch_all, namespace=sio_ns)
        self._catch_alls[sio_ns] = catch_all

    def _unserve(self, sio_ns: str) -> None:
        """Stop serving a closed namespace long gone: its handler goes, its clients too."""
        self._served.discard(sio_ns)
        catch_all = self._catch_alls.pop(sio_ns, None)
        handlers = getattr(self.io, "handlers", None)
        if catch_all is None or not isinstance(handlers, dict):
            return
        mine = handlers.get(sio_ns, {})
        if mine.get("*") is catch_all:
            del mine["*"]
            if not mine:
                del handlers[sio_ns]
        task = asyncio.get_running_loop().create_task(
            self._disconnect_all(sio_ns), name=f"coterie-sockend-unserve-{sio_ns}"
        )
        self._closing_spaces.add(task)
        task.add_done_callback(self._closing_spaces.discard)

    async def _disconnect_all(self, sio_ns: str) -> None:
        try:
            sids = [sid for sid, _ in self.io.manager.get_participants(sio_ns, None)]
            for sid in sids:
                await self.io.disconnect(sid, namespace=sio_ns)
        except Exception:
            log.debug("could not disconnect the clients of %s", sio_ns, exc_info=True)

    async def handle(self, sio_ns: str, event: str, sid: str, *args: Any) -> tuple[Any, ...]:
        """Forward one client event; returns the acknowledgement's arguments.

        Public so that an application with its own catch-all handler can
        delegate to it.

        Args:
            sio_ns: The socket.io namespace the event came on.
            event: The event name (the request type).
            sid: The client's session id.
            *args: The event's arguments; the first is the request object.

        Returns:
            ``(None, result)`` on success, ``(error,)`` otherwise.
        """
        try:
            result = await self._forward(sio_ns, event, sid, args)
        except Refused as exc:
            self.refused += 1
            log.debug("refused %r from %s on %s: %s", event, sid, sio_ns, exc.message)
            return (exc.payload(),)
        except RemoteError as exc:
            log.debug("%r from %s on %s failed remotely: %s", event, sid, sio_ns, exc.message)
            return (exc.payload,)
        except Exception:
            self.refused += 1
            log.exception("forwarding %r from %s on %s failed", event, sid, sio_ns)
            return (Refused(FAILED, "the gateway failed; see its log").payload(),)
        return (None, result)

    async def _forward(self, sio_ns: str, event: str, sid: str, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        if not self._started or self._closing:
            raise Refused(CLOSED, "the gateway is not running")
        request = request_from(event, args, self.max_payload)
        if len(args) > 1:
            log.debug("ignored %d extra argument(s) of %r", len(args) - 1, event)
        dropped = [k for k in RESERVED_KEYS if k in args[0]] if args else []
        if dropped:
            log.debug("removed client-set %s from %r", dropped, event)
        space = self._spaces.route(sio_ns, event)
        for transformer in list(self.transformers):
            try:
                outcome = transformer(request, sid, sio_ns)
                if inspect.isawaitable(outcome):
                    await outcome
            # A hook's refusal, whatever it raised, is the client's error.
            except Exception as exc:  # noqa: BLE001
                raise Refused(REJECTED, str(exc) or type(exc).__name__) from None
        request["type"] = event
        requester, ready = space.requester, space.requester_ready
        if requester is None or ready is None:
            raise Refused(NO_HANDLER, f"no responder serves {event!r} here")
        try:
            await asyncio.wait_for(asyncio.shield(ready), max(deadline - loop.time(), 0.001))
        except TimeoutError:
            raise Refused(TIMEOUT, "the gateway's requester did not start in time") from None
        except Exception:  # noqa: BLE001 - a requester that cannot start is the client's error
            raise Refused(CLOSED, "the gateway's requester could not start") from None
        self.forwarded += 1
        try:
            return await requester.send(request, timeout=max(deadline - loop.time(), 0.001))
        except RemoteError:
            raise
        except NotRunningError as exc:
            if space.closed:
                raise self._spaces.gone_error(space) from None
            raise failure(exc, event, self.request_timeout) from None
        except (
            CoterieError,
            TimeoutError,
            TypeError,
            ValueError,
            RuntimeError,
            ConnectionError,
        ) as exc:
            raise failure(exc, event, self.request_timeout) from None

    # -- mesh -> socket.io ---------------------------------------------------------

    def _published(self, space: Space, event: str, data: Any) -> None:
        if not space.broadcasts(event) or event in SOCKETIO_RESERVED:
            log.debug("not relaying %r: no publisher advertises it", event)
            return
        data, rooms = split_rooms(data)
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((space.sio_ns, event, data, rooms))
        except asyncio.QueueFull:
            log.warning("relay queue full (%d): dropped event %r", self.relay_queue, event)

    async def _relay_loop(
        self, queue: asyncio.Queue[tuple[str, str, Any, list[str] | None]]
    ) -> None:
        while True:
            sio_ns, event, data, rooms = await queue.get()
            if rooms is not None and not rooms:
                log.debug("relayed %r to no one: its room list is empty", event)
                continue
            try:
                await self.io.emit(event, data, namespace=sio_ns, to=rooms)
            except Exception:
                log.exception("could not emit %r on %s", event, sio_ns)
                continue
            self.relayed += 1
