"""The Sockend's namespace bookkeeping: which nodes of each namespace it knows and serves.

Design: :class:`Spaces` keeps one :class:`Space` per cote namespace the
Sockend serves: the types each responder lists and the events each publisher
broadcasts, and the requester and subscriber the Sockend runs there. It
hears discovery's node events (:meth:`Spaces.note`) and a periodic check
(:meth:`Spaces.check`), applies the rules of :mod:`coterie.protocol.pairing`
(which nodes a gateway exposes) and :mod:`coterie.protocol.namespaces` (the
cap and idleness), and asks its owner, the Sockend, to serve a socket.io
namespace, start a requester or subscriber, stop a closed space, or stop
serving a namespace long gone. It opens no socket and starts no task itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from coterie.components.requester import Requester
from coterie.components.subscriber import Subscriber
from coterie.protocol.namespaces import Namespace, NamespaceLife
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import advertised_names, exposes, lists_types, takes
from coterie.protocol.sockend import Refused, gone, no_handler, socketio_namespace

__all__ = ["Space", "Spaces", "gateway_requester"]

log = logging.getLogger("coterie.sockend")

#: Most namespaces refused past the cap that get a warning of their own per
#: check interval; the rest are summed up in one line.
_REFUSAL_WARNINGS = 10
#: Namespaces remembered as refused (one warning each).
_MEMORY = 1024


def gateway_requester(*args: Any, **kwargs: Any) -> Requester:
    """A requester that links only to responders listing their types (as cote's Sockend).

    A plain :class:`~coterie.Requester`, narrowed by the one filter hook
    components have (``_accepts``), not subclassed: a responder whose hello
    stops listing types is dropped as if it had left.

    Args:
        *args: Passed on to :class:`~coterie.Requester`.
        **kwargs: Passed on to :class:`~coterie.Requester`.
    """
    requester = Requester(*args, **kwargs)
    requester._accepts = _lists_types
    return requester


def _lists_types(node: Node) -> bool:
    return lists_types(node.advertisement)


@dataclass
class Space:
    """What the Sockend knows and runs for one cote namespace."""

    namespace: str | None
    #: Node id -> the types that responder lists.
    responders: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Node id -> the events that publisher broadcasts.
    publishers: dict[str, frozenset[str]] = field(default_factory=dict)
    requester: Requester | None = None
    requester_ready: asyncio.Task[None] | None = None
    subscriber: Subscriber | None = None
    subscriber_ready: asyncio.Task[None] | None = None
    #: Closed for idleness: its requester and subscriber are stopping.
    closed: bool = False

    @property
    def sio_ns(self) -> str:
        """The socket.io namespace serving it."""
        return socketio_namespace(self.namespace)

    def types(self) -> frozenset[str]:
        """Every type some responder of it lists."""
        return frozenset[str]().union(*self.responders.values())

    def takes(self, event: str) -> bool:
        """Whether some responder of it takes ``event``."""
        return any(takes(types, event) for types in self.responders.values())

    def broadcasts(self, event: str) -> bool:
        """Whether some publisher of it advertises ``event``."""
        return any(event in names for names in self.publishers.values())


class Owner(Protocol):
    """What :class:`Spaces` asks of the Sockend."""

    def _serve(self, sio_ns: str) -> None: ...

    def _unserve(self, sio_ns: str) -> None: ...

    def _start_requester(self, space: Space) -> None: ...

    def _start_subscriber(self, space: Space) -> None: ...

    def _stop_space(self, space: Space) -> None: ...


class Spaces:
    """The namespaces a Sockend serves, by cote namespace.

    Args:
        owner: The Sockend, asked to serve, start and stop.
        gateway: The Sockend's advertisement (its key and link security).
        max_namespaces: Most namespaces served at once besides the pinned ones.
        pinned: Namespaces never closed nor counted (the default one and
            those the application lists).
        initial: socket.io namespaces served from the start; never gone.
    """

    def __init__(
        self,
        owner: Owner,
        gateway: dict[str, Any],
        *,
        max_namespaces: int,
        pinned: Iterable[Namespace],
        initial: Iterable[str],
    ) -> None:
        self._owner = owner
        self._gateway = gateway
        self.max_namespaces = max_namespaces
        self.pinned: frozenset[Namespace] = frozenset(pinned)
        self.initial = list(initial)
        self.by_namespace: dict[Namespace, Space] = {}
        self._life: NamespaceLife | None = None
        #: socket.io namespaces whose cote namespace was closed, oldest first.
        self._gone: OrderedDict[str, Namespace] = OrderedDict()
        #: Namespaces refused past the cap that were logged, oldest first.
        self._refused_logged: OrderedDict[Namespace, None] = OrderedDict()
        self._refusal_warnings = _REFUSAL_WARNINGS
        self._refusals_unlogged = 0
        #: Namespaces closed because no node of theirs was seen for the node timeout.
        self.closed = 0
        #: Announcements of a namespace ignored because ``max_namespaces`` were served.
        self.refused = 0

    def start(self, node_timeout: float) -> None:
        """Begin counting namespaces against the cap and their idleness (seconds)."""
        self._life = NamespaceLife(
            node_timeout=node_timeout, max_namespaces=self.max_namespaces, pinned=self.pinned
        )

    @property
    def node_timeout(self) -> float:
        """Seconds without a node after which a namespace is closed (0 before start)."""
        return self._life.node_timeout if self._life is not None else 0.0

    # -- queries ---------------------------------------------------------------------

    def served_on(self, sio_ns: str) -> list[Space]:
        """The spaces served on a socket.io namespace (``None`` and ``""`` share ``/``)."""
        return [space for space in self.by_namespace.values() if space.sio_ns == sio_ns]

    def route(self, sio_ns: str, event: str) -> Space:
        """The space whose responders take ``event`` on ``sio_ns``.

        Raises:
            Refused: ``gone`` when that namespace was closed, else ``no_handler``.
        """
        for space in self.by_namespace.values():
            if space.sio_ns == sio_ns and space.takes(event):
                return space
        if sio_ns in self._gone:
            raise gone(self._gone[sio_ns], sio_ns, self.node_timeout)
        raise no_handler(event, sio_ns)

    def gone_error(self, space: Space) -> Refused:
        """The refusal for a request that met ``space`` closing."""
        return gone(space.namespace, space.sio_ns, self.node_timeout)

    # -- discovery ---------------------------------------------------------------------

    def note(self, event: str, node: Node, *, opening: bool = True) -> None:
        """A discovery event (``added``, ``updated``, ``removed``) about ``node``.

        With ``opening`` false (the Sockend is closing), nodes leave their
        spaces but nothing new is served or started.
        """
        adv = node.advertisement
        if not exposes(self._gateway, adv):
            return
        namespace: Namespace = adv.get("namespace")
        if event == "removed":
            space = self.by_namespace.get(namespace)
            if space is not None:
                space.responders.pop(node.id, None)
                space.publishers.pop(node.id, None)
            if self._life is not None:
                self._life.seen(namespace, node.last_seen)
            return
        if not opening:
            return
        responder = adv.get("axon_type") == "rep"
        if responder and not lists_types(adv):  # cote's Sockend ignores these too
            if namespace in self.by_namespace:
                self.by_namespace[namespace].responders.pop(node.id, None)
            return
        space = self._space(namespace, node)
        if space is None:
            return
        if responder:
            space.responders[node.id] = advertised_names(adv.get("respondsTo"))
            if space.requester is None:
                self._owner._start_requester(space)
        else:
            space.publishers[node.id] = advertised_names(adv.get("broadcasts"))
            if space.subscriber is None:
                self._owner._start_subscriber(space)

    def _space(self, namespace: Namespace, node: Node) -> Space | None:
        """The namespace's space, made if the cap allows; ``None`` when refused."""
        space = self.by_namespace.get(namespace)
        life = self._life
        if life is not None and not life.admit(namespace, node.last_seen):
            self._refuse(namespace, node)
            return None
        if space is None:
            space = self.by_namespace[namespace] = Space(namespace)
            self._gone.pop(space.sio_ns, None)
            self._owner._serve(space.sio_ns)
        return space

    def _refuse(self, namespace: Namespace, node: Node) -> None:
        """Log (once per namespace, a few lines per check) a namespace past the cap."""
        self.refused += 1
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

    # -- life cycle ----------------------------------------------------------------------

    def check(self, nodes: Iterable[Node], now: float) -> None:
        """Close idle namespaces, admit waiting ones, sum up refusals.

        Args:
            nodes: Every node discovery knows now.
            now: The discovery clock (``time.monotonic()``), as nodes' ``last_seen``.
        """
        life = self._life
        if life is None:
            return
        for node in nodes:
            adv = node.advertisement
            if not exposes(self._gateway, adv):
                continue
            namespace = adv.get("namespace")
            if namespace in self.by_namespace:
                life.seen(namespace, node.last_seen)
            elif now - node.last_seen <= life.node_timeout:
                # Alive but not served: refused earlier for the cap, or its
                # namespace was closed while the node was still in the table.
                self.note("added", node)
        for namespace in life.idle(now):
            self._close(namespace, life.last_seen(namespace), now)
        if self._refusals_unlogged:
            log.warning(
                "not serving %d more namespaces announced past max_namespaces=%d",
                self._refusals_unlogged,
                self.max_namespaces,
            )
            self._refusals_unlogged = 0
        self._refusal_warnings = _REFUSAL_WARNINGS

    def _close(self, namespace: Namespace, last_seen: float | None, now: float) -> None:
        """Close an idle namespace: the owner stops its requester and subscriber."""
        assert self._life is not None
        self._life.forget(namespace)
        space = self.by_namespace.pop(namespace, None)
        if space is None:
            return
        space.closed = True
        self.closed += 1
        sio_ns = space.sio_ns
        silent = f"{now - last_seen:.1f} s" if last_seen is not None else "a while"
        log.info(
            "closing namespace %r on %s: no responder or publisher of it seen for %s",
            namespace,
            sio_ns,
            silent,
        )
        if sio_ns not in self.initial and not self.served_on(sio_ns):
            self._gone[sio_ns] = namespace
            self._gone.move_to_end(sio_ns)
            while len(self._gone) > max(self.max_namespaces, 16):
                old, _ = self._gone.popitem(last=False)
                self._owner._unserve(old)
        self._owner._stop_space(space)
