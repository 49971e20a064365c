"""Sockend: a socket.io gateway that exposes the mesh to browsers, as cote's Sockend.

Design: a :class:`Sockend` is a component that pairs with nothing (it
advertises ``axon_type: "sockend"``, as cote's does) and watches every node
discovery reports. Nodes with the Sockend's key are grouped by their cote
namespace; each namespace ``ns`` is served on the socket.io namespace
``/ns`` (no namespace, or ``""``, is ``/``):

- **Requests.** For each namespace that has a responder advertising a
  ``respondsTo`` list, the Sockend starts one coterie
  :class:`~coterie.Requester` in that namespace (linked only to responders
  that advertise ``respondsTo``, as cote's) and registers a catch-all
  handler on the socket.io namespace. A client's ``emit(type, data, ack)``
  becomes ``requester.send({**data, "type": type})`` and the ack receives
  ``(null, result)``, or ``(error)`` when it failed: the responder's error
  value as it arrived (cote's behaviour), or one of the Sockend's own errors,
  ``{"name": "SockendError", "code": ..., "message": ...}``.
- **Publishes.** For each namespace that has a publisher, the Sockend starts
  one coterie :class:`~coterie.Subscriber` there and relays each event whose
  name some publisher of that namespace advertises in ``broadcasts`` to the
  socket.io namespace: to everyone, or, when the data is an object carrying
  ``__room`` and/or ``__rooms``, only to those rooms (the two keys are
  removed before the emit). Rooms are joined by the application, e.g. in a
  ``connect`` handler with ``sio.enter_room``. A client in several of the
  rooms gets the event once (cote sends it once per room). Events are emitted
  in arrival order by one task, through a bounded queue.

Beyond cote, on purpose (cote 1.2.0's weak spots):

- ``__subset`` and ``__timeout`` sent by a client are removed: routing and
  time bounds are the server's business. Server-side *transformers* (cote's
  ``requesterTransformators``) run after that and may set them.
- Only event types that a discovered responder of that namespace currently
  advertises in ``respondsTo`` are forwarded (all of them: cote exposes only
  the first responder's list); others get a ``no_handler`` error.
- A missing payload is ``{}`` (as cote); a ``null`` or non-object payload,
  one that is not JSON, or one larger than ``max_payload`` bytes gets a
  ``bad_request`` / ``too_large`` error instead of crashing the process.
- Every forwarded request is bounded by ``request_timeout`` (``timeout``
  error) and by the requester's waiting queue (``queue_full`` error).
- Errors are logged at debug level. An emit without an acknowledgement is
  still forwarded (fire and forget, as in cote); its answer or error is
  dropped by python-socketio, which sends acks only when asked.
- A publisher that advertises no ``broadcasts`` list has nothing relayed
  (cote relays all its events).
- Namespaces have a life cycle (cote keeps every namespace it ever saw,
  so anyone who can send a hello makes it run requesters forever). A
  namespace none of whose responders or publishers has been seen for the
  discovery's ``node_timeout`` is closed: its requester and subscriber stop
  (checked every ``check_interval``; rules in
  :mod:`coterie.protocol.namespaces`). A client that calls it then gets a
  ``gone`` error; it is served again when a node of it returns. At most
  ``max_namespaces`` are served at once; a namespace announced past that is
  ignored, with one warning naming it and the node. The default namespace
  and those listed in ``namespaces=`` are never closed nor counted.

python-socketio is an optional dependency (``pip install 'coterie[sockend]'``);
``import coterie`` never imports this module. Serve the socket.io server with
aiohttp (see :func:`socketio_app` and ``docs/sockend.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from coterie.components.base import Component
from coterie.components.requester import Requester
from coterie.components.subscriber import Subscriber
from coterie.errors import FrameTooLargeError, NotRunningError, QueueFullError, RemoteError
from coterie.protocol.codes import (
    BAD_REQUEST,
    CLOSED,
    FAILED,
    GONE,
    NO_HANDLER,
    QUEUE_FULL,
    REJECTED,
    TIMEOUT,
    TOO_LARGE,
    code_of,
    refusal,
)
from coterie.protocol.messages import SUBSET_FIELD, TIMEOUT_FIELD, without
from coterie.protocol.namespaces import Namespace, NamespaceLife
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import same_link_security
from coterie.transport.timer import Alarm

try:
    import socketio  # type: ignore[import-untyped]
    from aiohttp import web
except ImportError as _exc:  # without the extra: one clear message, not a missing module
    raise ImportError(
        f"coterie.gateways.sockend needs python-socketio and aiohttp ({_exc.name} is "
        "missing): pip install 'coterie[sockend]'",
        name=_exc.name,
    ) from _exc

__all__ = [
    "DEFAULT_MAX_NAMESPACES",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_REQUEST_TIMEOUT",
    "RESERVED_KEYS",
    "Sockend",
    "Transformer",
    "socketio_app",
    "socketio_namespace",
]

log = logging.getLogger("coterie.sockend")

#: Seconds a forwarded request may take, waiting for a responder included.
DEFAULT_REQUEST_TIMEOUT = 10.0
#: Largest client payload forwarded, in bytes of JSON.
DEFAULT_MAX_PAYLOAD = 64 * 1024
#: Request keys a client may not set; they are removed before forwarding.
RESERVED_KEYS = (SUBSET_FIELD, TIMEOUT_FIELD)
#: Most published events waiting to be emitted to clients.
DEFAULT_RELAY_QUEUE = 10_000
#: Most namespaces served at once, besides the default one and those listed.
DEFAULT_MAX_NAMESPACES = 64
#: Most namespaces refused past the cap that get a warning of their own per
#: check interval; the rest are summed up in one line.
_REFUSAL_WARNINGS = 10
#: Namespaces remembered as refused (one warning each) or closed (``gone``).
_MEMORY = 1024

#: Event names socket.io reserves; never forwarded nor relayed.
_SOCKETIO_RESERVED = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

#: ``transformer(request, sid, namespace)``: may change the request in place,
#: or raise to refuse it (the message goes to the client). Plain or async.
Transformer = Callable[[dict[str, Any], str, str], Awaitable[None] | None]


def socketio_namespace(namespace: str | None) -> str:
    """The socket.io namespace serving a cote namespace: ``/ns``, or ``/``."""
    return "/" + (namespace or "")


def socketio_app(io: Any) -> web.Application:
    """An aiohttp application serving the socket.io server ``io`` at ``/socket.io/``."""
    app = web.Application()
    io.attach(app)
    return app


class _Refused(Exception):
    """A request the Sockend answers itself, with an error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def payload(self) -> dict[str, str]:
        return refusal(self.code, self.message, "SockendError")


def _names(value: Any) -> frozenset[str]:
    """The strings of an advertised list (``respondsTo``, ``broadcasts``)."""
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str) and v)


class _GatewayRequester(Requester):
    """A requester that links only to responders advertising ``respondsTo`` (as cote's)."""

    def _node_added(self, node: Node) -> None:
        if isinstance(node.advertisement.get("respondsTo"), list):
            super()._node_added(node)

    def _node_updated(self, node: Node) -> None:
        if isinstance(node.advertisement.get("respondsTo"), list):
            super()._node_updated(node)
        else:
            super()._node_removed(node)


@dataclass
class _Space:
    """What the Sockend knows and runs for one cote namespace."""

    namespace: str | None
    responders: dict[str, frozenset[str]] = field(default_factory=dict)
    publishers: dict[str, frozenset[str]] = field(default_factory=dict)
    requester: Requester | None = None
    requester_ready: asyncio.Task[None] | None = None
    subscriber: Subscriber | None = None
    subscriber_ready: asyncio.Task[None] | None = None
    #: Closed for idleness: its requester and subscriber are stopping.
    closed: bool = False

    def types(self) -> frozenset[str]:
        return frozenset[str]().union(*self.responders.values())

    def takes(self, event: str) -> bool:
        return any(event in t or "*" in t for t in self.responders.values())

    def broadcasts(self, event: str) -> bool:
        return any(event in b for b in self.publishers.values())


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
        self._initial = [socketio_namespace(None), *(socketio_namespace(n) for n in namespaces)]
        #: Namespaces never closed nor counted against ``max_namespaces``.
        self._pinned: frozenset[Namespace] = frozenset((None, *namespaces))
        self.max_namespaces = max_namespaces
        self._spaces: dict[str | None, _Space] = {}
        self._served: set[str] = set()
        self._catch_alls: dict[str, Callable[..., Awaitable[tuple[Any, ...]]]] = {}
        self._life: NamespaceLife | None = None
        self._reaper = Alarm(self._check_spaces)
        self._closing_spaces: set[asyncio.Task[None]] = set()
        #: socket.io namespaces whose cote namespace was closed, oldest first.
        self._gone: OrderedDict[str, Namespace] = OrderedDict()
        #: Namespaces refused past the cap that were logged, oldest first.
        self._refused_logged: OrderedDict[Namespace, None] = OrderedDict()
        self._refusal_warnings = _REFUSAL_WARNINGS
        self._refusals_unlogged = 0
        self._queue: asyncio.Queue[tuple[str, str, Any, list[str] | None]] | None = None
        self._relayer: asyncio.Task[None] | None = None
        self._change = asyncio.Event()
        #: Requests forwarded to a responder (answered or not).
        self.forwarded = 0
        #: Requests answered by the Sockend itself with an error.
        self.refused = 0
        #: Published events emitted to socket.io clients.
        self.relayed = 0
        #: Namespaces closed because no node of theirs was seen for the node timeout.
        self.namespaces_closed = 0
        #: Announcements of a namespace ignored because ``max_namespaces`` were served.
        self.namespaces_refused = 0

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
        for space in self._spaces.values():
            if socketio_namespace(space.namespace) == socketio_namespace(namespace):
                types |= space.types()
        return sorted(types)

    def namespaces(self) -> list[Namespace]:
        """The cote namespaces the Sockend runs a requester or subscriber for now."""
        return [ns for ns, space in self._spaces.items() if space.requester or space.subscriber]

    def relays(self, namespace: str | None = None) -> list[str]:
        """Event names currently relayed on a cote namespace's socket.io namespace."""
        names: set[str] = set()
        for space in self._spaces.values():
            if socketio_namespace(space.namespace) == socketio_namespace(namespace):
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
            while (space := self._spaces.get(namespace)) is None or not (
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
        self._life = NamespaceLife(
            node_timeout=self.discovery_settings.node_timeout / 1000,
            max_namespaces=self.max_namespaces,
            pinned=self._pinned,
        )
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.relay_queue)
        self._relayer = loop.create_task(
            self._relay_loop(self._queue), name="coterie-sockend-relay"
        )
        for sio_ns in self._initial:
            self._serve(sio_ns)
        self._reaper.after(self.discovery_settings.check_interval / 1000)

    async def _shutdown(self) -> None:
        self._reaper.cancel()
        spaces = list(self._spaces.values())
        self._spaces.clear()
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
        self._note(event, node)
        self._change.set()

    def _exposable(self, node: Node) -> tuple[bool, Namespace]:
        """Whether the Sockend exposes ``node`` (a responder or publisher); its namespace."""
        adv = node.advertisement
        if adv.get("key") != self.advertisement.get("key"):
            return False, None
        if adv.get("axon_type") not in ("rep", "pub-emitter"):
            return False, None
        if not same_link_security(self.advertisement, adv):
            return False, None  # the requester or subscriber would not pair with it either
        namespace = adv.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            log.debug("ignored %s with a non-string namespace %r", node.id, namespace)
            return False, None
        return True, namespace

    def _note(self, event: str, node: Node) -> None:
        exposable, namespace = self._exposable(node)
        if not exposable:
            return
        adv = node.advertisement
        if event == "removed":
            space = self._spaces.get(namespace)
            if space is not None:
                space.responders.pop(node.id, None)
                space.publishers.pop(node.id, None)
            if self._life is not None:
                self._life.seen(namespace, node.last_seen)
            return
        if self._closing:
            return
        if adv.get("axon_type") == "rep":
            responds_to = adv.get("respondsTo")
            if not isinstance(responds_to, list):  # cote's Sockend ignores these too
                if namespace in self._spaces:
                    self._spaces[namespace].responders.pop(node.id, None)
                return
            space = self._space(namespace, node)
            if space is None:
                return
            space.responders[node.id] = _names(responds_to)
            if space.requester is None:
                self._start_requester(space)
        else:
            space = self._space(namespace, node)
            if space is None:
                return
            space.publishers[node.id] = _names(adv.get("broadcasts"))
            if space.subscriber is None:
                self._start_subscriber(space)

    def _space(self, namespace: Namespace, node: Node) -> _Space | None:
        """The namespace's space, made if the cap allows; ``None`` when refused."""
        space = self._spaces.get(namespace)
        life = self._life
        if life is not None and not life.admit(namespace, node.last_seen):
            self._refuse(namespace, node)
            return None
        if space is None:
            space = self._spaces[namespace] = _Space(namespace)
            sio_ns = socketio_namespace(namespace)
            self._gone.pop(sio_ns, None)
            self._serve(sio_ns)
        return space

    def _refuse(self, namespace: Namespace, node: Node) -> None:
        """Log (once per namespace, a few lines per check) a namespace past the cap."""
        self.namespaces_refused += 1
        if namespace in self._refused_logged:
            self._refused_logged.move_to_end(namespace)
            return
        self._refused_logged[namespace] = None
        if len(self._refused_logged) > _MEMORY:
            self._refused_logged.popitem(last=False)
        if self._refusal_warnings <= 0:
            self._refusals_unlogged += 1
            return
        self._refusal_warnings -= 1
        log.warning(
            "not serving namespace %r announced by %s (%r, %s): already serving "
            "max_namespaces=%d namespaces",
            namespace,
            node.id,
            node.advertisement.get("name"),
            node.address,
            self.max_namespaces,
        )

    # -- namespace life cycle --------------------------------------------------------

    def _check_spaces(self) -> None:
        """Timer: close idle namespaces, admit waiting ones, sum up refusals."""
        life = self._life
        if self._closing or life is None or self.discovery_settings is None:
            return
        now = time.monotonic()
        nodes = list(self.discovery.nodes.values()) if self.discovery is not None else []
        for node in nodes:
            exposable, namespace = self._exposable(node)
            if not exposable:
                continue
            if namespace in self._spaces:
                life.seen(namespace, node.last_seen)
            elif now - node.last_seen <= life.node_timeout:
                # Alive but not served: refused earlier for the cap, or its
                # namespace was closed while the node was still in the table.
                self._note("added", node)
        for namespace in life.idle(now):
            self._close_space(namespace, life.last_seen(namespace), now)
        if self._refusals_unlogged:
            log.warning(
                "not serving %d more namespaces announced past max_namespaces=%d",
                self._refusals_unlogged,
                self.max_namespaces,
            )
            self._refusals_unlogged = 0
        self._refusal_warnings = _REFUSAL_WARNINGS
        assert self.discovery_settings is not None
        self._reaper.after(self.discovery_settings.check_interval / 1000)

    def _close_space(self, namespace: Namespace, last_seen: float | None, now: float) -> None:
        """Close an idle namespace's requester and subscriber (in a task)."""
        assert self._life is not None
        self._life.forget(namespace)
        space = self._spaces.pop(namespace, None)
        if space is None:
            return
        space.closed = True
        self.namespaces_closed += 1
        sio_ns = socketio_namespace(namespace)
        silent = f"{now - last_seen:.1f} s" if last_seen is not None else "a while"
        log.info(
            "closing namespace %r on %s: no responder or publisher of it seen for %s",
            namespace,
            sio_ns,
            silent,
        )
        if sio_ns not in self._initial and not any(
            socketio_namespace(other) == sio_ns for other in self._spaces
        ):
            self._gone[sio_ns] = namespace
            self._gone.move_to_end(sio_ns)
            while len(self._gone) > max(self.max_namespaces, 16):
                old, _ = self._gone.popitem(last=False)
                self._unserve(old)
        task = asyncio.get_running_loop().create_task(
            self._stop_space(space), name=f"coterie-sockend-close-{sio_ns}"
        )
        self._closing_spaces.add(task)
        task.add_done_callback(self._closing_spaces.discard)
        self._change.set()

    @staticmethod
    async def _stop_space(space: _Space) -> None:
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

    def _component_kwargs(self, space: _Space) -> dict[str, Any]:
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

    def _start_requester(self, space: _Space) -> None:
        requester = _GatewayRequester(
            f"{self.name} requester",
            timeout=self.request_timeout,
            max_waiting=self.max_waiting,
            **self._component_kwargs(space),
        )
        space.requester = requester
        space.requester_ready = self._start(requester)
        self._change.set()
        log.info("exposing responders of namespace %r on %s", space.namespace, self._ns(space))

    def _start_subscriber(self, space: _Space) -> None:
        subscriber = Subscriber(
            f"{self.name} subscriber", subscribes_to=["*"], **self._component_kwargs(space)
        )
        subscriber.on("*", lambda event, data: self._published(space, event, data))
        space.subscriber = subscriber
        space.subscriber_ready = self._start(subscriber)
        self._change.set()
        log.info("relaying publishers of namespace %r on %s", space.namespace, self._ns(space))

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

    @staticmethod
    def _ns(space: _Space) -> str:
        return socketio_namespace(space.namespace)

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
        except _Refused as exc:
            self.refused += 1
            log.debug("refused %r from %s on %s: %s", event, sid, sio_ns, exc.message)
            return (exc.payload(),)
        except RemoteError as exc:
            log.debug("%r from %s on %s failed remotely: %s", event, sid, sio_ns, exc.message)
            return (exc.payload,)
        except Exception:
            self.refused += 1
            log.exception("forwarding %r from %s on %s failed", event, sid, sio_ns)
            return (_Refused(FAILED, "the gateway failed; see its log").payload(),)
        return (None, result)

    async def _forward(self, sio_ns: str, event: str, sid: str, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        if not self._started or self._closing:
            raise _Refused(CLOSED, "the gateway is not running")
        if not isinstance(event, str):
            raise _Refused(
                BAD_REQUEST, f"an event name must be a string, got {type(event).__name__}"
            )
        request = self._request_from(event, args)
        space = self._route(sio_ns, event)
        for transformer in list(self.transformers):
            try:
                outcome = transformer(request, sid, sio_ns)
                if inspect.isawaitable(outcome):
                    await outcome
            # A hook's refusal, whatever it raised, is the client's error.
            except Exception as exc:  # noqa: BLE001
                raise _Refused(REJECTED, str(exc) or type(exc).__name__) from None
        request["type"] = event
        requester, ready = space.requester, space.requester_ready
        if requester is None or ready is None:
            raise _Refused(NO_HANDLER, f"no responder serves {event!r} here")
        try:
            await asyncio.wait_for(asyncio.shield(ready), max(deadline - loop.time(), 0.001))
        except TimeoutError:
            raise _Refused(TIMEOUT, "the gateway's requester did not start in time") from None
        except Exception:  # noqa: BLE001 - a requester that cannot start is the client's error
            raise _Refused(CLOSED, "the gateway's requester could not start") from None
        self.forwarded += 1
        try:
            return await requester.send(request, timeout=max(deadline - loop.time(), 0.001))
        except NotRunningError:
            if space.closed:
                raise self._gone_error(sio_ns, space.namespace) from None
            raise _Refused(CLOSED, "the gateway's requester is not running") from None
        except TimeoutError:
            raise _Refused(
                TIMEOUT, f"no answer to {event!r} within {self.request_timeout:g} s"
            ) from None
        except QueueFullError:
            raise _Refused(QUEUE_FULL, "too many requests are waiting for a responder") from None
        except FrameTooLargeError:
            raise _Refused(TOO_LARGE, "the request is too large for the mesh") from None
        except (TypeError, ValueError) as exc:
            raise _Refused(BAD_REQUEST, f"the request cannot be sent: {exc}") from None
        except (RuntimeError, ConnectionError) as exc:
            raise _Refused(code_of(exc), f"the request could not be completed: {exc}") from None

    def _request_from(self, event: str, args: tuple[Any, ...]) -> dict[str, Any]:
        if not args:
            data: Any = {}
        else:
            data = args[0]
            if len(args) > 1:
                log.debug("ignored %d extra argument(s) of %r", len(args) - 1, event)
        if not isinstance(data, dict):
            kind = "null" if data is None else type(data).__name__
            raise _Refused(BAD_REQUEST, f"the payload of {event!r} must be an object, got {kind}")
        try:
            size = len(orjson.dumps(data))
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise _Refused(BAD_REQUEST, f"the payload of {event!r} is not JSON: {exc}") from None
        if size > self.max_payload:
            raise _Refused(
                TOO_LARGE,
                f"the payload of {event!r} is {size} bytes; the limit is {self.max_payload}",
            )
        request = without(data, RESERVED_KEYS)
        if len(request) != len(data):
            log.debug(
                "removed client-set %s from %r", [k for k in RESERVED_KEYS if k in data], event
            )
        return request

    def _route(self, sio_ns: str, event: str) -> _Space:
        if event in _SOCKETIO_RESERVED:
            raise _Refused(NO_HANDLER, f"{event!r} is a reserved socket.io event")
        for space in self._spaces.values():
            if socketio_namespace(space.namespace) == sio_ns and space.takes(event):
                return space
        if sio_ns in self._gone:
            raise self._gone_error(sio_ns, self._gone[sio_ns])
        raise _Refused(NO_HANDLER, f"no responder serves {event!r} on {sio_ns}")

    def _gone_error(self, sio_ns: str, namespace: Namespace) -> _Refused:
        timeout = (
            self.discovery_settings.node_timeout / 1000
            if self.discovery_settings is not None
            else 0
        )
        return _Refused(
            GONE,
            f"namespace {namespace!r} ({sio_ns}) was closed: none of its responders has been "
            f"seen for {timeout:g} s",
        )

    # -- mesh -> socket.io ---------------------------------------------------------

    def _published(self, space: _Space, event: str, data: Any) -> None:
        if not space.broadcasts(event) or event in _SOCKETIO_RESERVED:
            log.debug("not relaying %r: no publisher advertises it", event)
            return
        rooms: list[str] | None = None
        if isinstance(data, dict) and ("__room" in data or "__rooms" in data):
            data = dict(data)
            several, one = data.pop("__rooms", None), data.pop("__room", None)
            if several is not None or one is not None:
                rooms = _rooms(several, one)
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((self._ns(space), event, data, rooms))
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


def _rooms(rooms: Any, room: Any) -> list[str]:
    """The rooms of ``__rooms`` (a list or one name) and ``__room``, in order, once each."""
    names: list[Any] = []
    if isinstance(rooms, list | tuple):
        names.extend(rooms)
    elif rooms is not None:
        names.append(rooms)
    if room is not None:
        names.append(room)
    seen: dict[str, None] = {}
    for name in names:
        if isinstance(name, str | int) and not isinstance(name, bool):
            seen.setdefault(str(name), None)
    return list(seen)
