"""What every component shares: advertisement, discovery, lifecycle.

Design: a :class:`Component` is an async context manager. ``start`` binds
whatever the role needs (a TCP port for responders and publishers), fills the
advertisement, then starts discovery; peers that pair under cote's rule reach
the role's ``_node_added`` / ``_node_updated`` / ``_node_removed`` hooks.
Everything else is the role's business.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from coterie.discovery.network import DEFAULT_NETWORK, Network
from coterie.discovery.options import DiscoveryOptions, DiscoverySettings
from coterie.discovery.service import Discovery, NodeListener, TransportFactory
from coterie.observe import Observer, Stats, combine
from coterie.protocol.framing import DEFAULT_MAX_FRAME_SIZE
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import build_advertisement, pairs, role_of
from coterie.settings import Settings
from coterie.tls import ADVERTISED as TLS_ADVERTISED
from coterie.tls import TLS, TLSFiles, resolve_tls

if TYPE_CHECKING:
    from coterie.metrics import Metrics
    from coterie.tracing import Tracing

__all__ = ["Component"]

log = logging.getLogger("coterie")

#: Seconds ``close`` waits for its links' ends to be reported to the observer.
LINKS_GONE_TIMEOUT = 1.0


class Component:
    """Base of Requester, Responder, Publisher, Subscriber and Monitor.

    Args:
        name: Human-readable name shown to peers and monitors.
        namespace: Only components in the same namespace pair.
        key: cote's advertisement key: only equal keys pair (not encryption).
        environment: Environment prefix for the key; ``COTE_ENV`` by default.
        discovery: Discovery options; unset fields come from the environment.
        advertisement: Extra advertisement fields.
        max_frame_size: Largest frame accepted or sent, in bytes.
        transport_factory: Builds the discovery transport (pluggable).
        metrics: Prometheus metrics (:mod:`coterie.metrics`): ``True`` for the
            process-wide :func:`coterie.metrics.default`, or a
            :class:`coterie.metrics.Metrics`. Off by default.
        tracing: OpenTelemetry tracing across services (:mod:`coterie.tracing`):
            ``True`` for the global tracer provider, or a
            :class:`coterie.tracing.Tracing`. Off by default.
        observer: Hears this component's events (:mod:`coterie.observe`),
            besides metrics and tracing. One observer per component.
        tls: Mutual TLS on every link (:mod:`coterie.tls`): an
            ``ssl.SSLContext``, or :class:`~coterie.TLSFiles` paths to the CA
            and this service's certificate and key (default: the
            ``COTERIE_TLS_CA`` / ``_CERT`` / ``_KEY`` variables). The component
            then pairs only with peers that run TLS too; Node cote cannot.
        secret: A shared secret as the root of mutual TLS
            (:meth:`coterie.tls.TLS.from_secret`; ``COTERIE_LINK_SECRET``):
            every component that knows it gets a certificate from the same
            derived CA. Not with ``tls``.
        environ: The environment to read settings from (see
            :mod:`coterie.settings`); ``os.environ`` by default.
        network: Where links and discovery move their bytes; real sockets by
            default. :class:`coterie.testing.Mesh` passes an in-process one.
    """

    role: ClassVar[str] = ""
    opposite: ClassVar[str] = ""
    #: Whether it accepts links (the TLS server side) or opens them.
    _listens: ClassVar[bool] = False

    def __init__(
        self,
        name: str | None = None,
        *,
        namespace: str | None = None,
        key: str | None = None,
        environment: str | None = None,
        discovery: DiscoveryOptions | None = None,
        advertisement: dict[str, Any] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        transport_factory: TransportFactory | None = None,
        metrics: Metrics | bool | None = None,
        tracing: Tracing | bool | None = None,
        observer: Observer | None = None,
        tls: ssl.SSLContext | TLSFiles | None = None,
        secret: str | None = None,
        environ: Mapping[str, str] | None = None,
        network: Network | None = None,
    ) -> None:
        self.network: Network = network or DEFAULT_NETWORK
        self._environ = environ
        #: What the ``COTE_*`` / ``COTERIE_*`` environment variables say
        #: (:mod:`coterie.settings`), read once.
        self.variables = Settings.from_environ(environ)
        if tls is None and secret is None:
            tls, secret = self.variables.tls_files(), self.variables.link_secret
        if tls is not None and secret is not None:
            raise ValueError("give tls= or secret=, not both")
        #: What this component was configured with, for components it starts.
        self.tls_config: tuple[ssl.SSLContext | TLSFiles | None, str | None] = (tls, secret)
        if tls is not None or secret is not None:
            field, value = TLS_ADVERTISED
            advertisement = {**(advertisement or {}), field: value}
        self.advertisement = build_advertisement(
            self.role,
            name=name,
            namespace=namespace,
            key=key,
            environment=self.variables.environment if environment is None else environment,
            extra=advertisement,
        )
        self.name: str = self.advertisement["name"]
        # coterie.metrics and coterie.tracing load only for a component that uses them.
        measured = traced = None
        if metrics is not None and metrics is not False:
            from coterie import metrics as _metrics

            measured = _metrics.resolve(metrics)
        if tracing is not None and tracing is not False:
            from coterie import tracing as _tracing

            traced = _tracing.resolve(tracing)
        #: The one observer of this component's events (:mod:`coterie.observe`):
        #: metrics, then tracing, then the caller's; ``None`` when nothing observes.
        self._observer: Observer | None = combine(
            None if measured is None else measured.observe(self),
            None if traced is None else traced.observe(self),
            observer,
        )
        #: Links reported opened and not yet closed, and set when that is none.
        self._observed_links = 0
        self._links_gone: asyncio.Event | None = None
        #: The TLS its links use, or ``None`` for plaintext (cote's links).
        self.tls: TLS | None = resolve_tls(
            tls, secret, self.name, server=self._listens, lifetime=self.variables.link_cert_lifetime
        )
        self.namespace = namespace
        self.max_frame_size = max_frame_size
        self._options = discovery or DiscoveryOptions()
        self._transport_factory = transport_factory
        self.discovery: Discovery | None = None
        #: The discovery options resolved against the environment (after start).
        self.discovery_settings: DiscoverySettings | None = None
        self._started = False
        self._closing = False
        self._node_listeners: list[NodeListener] = []
        #: Which paired nodes the role hooks hear of (``None``: all). A holder
        #: narrows a component with it instead of subclassing it: the
        #: Sockend's requester hears only of responders that list their types
        #: (:func:`coterie.gateways.sockend._spaces.gateway_requester`); a
        #: node that stops passing it is as one removed.
        self._accepts: Callable[[Node], bool] | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> Self:
        """Bind, then start discovery. Idempotent."""
        if self._started:
            return self
        self.discovery_settings = self._options.resolve(self._environ)
        await self._bind()
        self.discovery = Discovery(
            self.advertisement,
            self.discovery_settings,
            transport_factory=self._transport_factory or self.network.discovery_transport,
        )
        self.discovery.on(self._node_event)
        self.discovery.linked = self._linked_to
        self.discovery.heard = self._heard_from
        try:
            await self.discovery.start()
        except BaseException:
            await self._unbind()
            raise
        self._started = True
        if self._observer is not None:
            self._observer.started()
        return self

    async def close(self) -> None:
        """Leave the mesh. Idempotent."""
        if not self._started or self._closing:
            return
        self._closing = True
        try:
            await self._shutdown()
        finally:
            if self.discovery is not None:
                await self.discovery.close()
            await self._unbind()
            self._started = False
            if self._observer is not None:
                await self._wait_links_gone()
                self._observer.closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def on_node(self, listener: NodeListener) -> NodeListener:
        """Call ``listener(event, node)`` when a pairing peer is ``"added"`` or ``"removed"``.

        cote's ``cote:added`` / ``cote:removed`` events. Usable as a decorator.
        """
        self._node_listeners.append(listener)
        return listener

    @property
    def id(self) -> str:
        """This component's instance id on the mesh (after start)."""
        return self.discovery.iid if self.discovery else ""

    @property
    def peers(self) -> list[Node]:
        """Discovered nodes that pair with this component."""
        if self.discovery is None:
            return []
        return [n for n in self.discovery.nodes.values() if self._pairs(n)]

    def stats(self) -> Stats:
        """What this component holds now: links, discovered nodes, and its role's counts.

        A snapshot (:class:`coterie.observe.Stats`, or the role's subclass of
        it), cheap enough to read often; :mod:`coterie.metrics` reads it at
        scrape time.
        """
        return Stats(**self._stats_fields())

    def _stats_fields(self) -> dict[str, Any]:
        """The fields every role's snapshot has."""
        nodes: dict[str, str] = {}
        if self.discovery is not None:
            for node_id, node in self.discovery.nodes.items():
                nodes[node_id] = role_of(node.advertisement)
        return {
            "role": role_of(self.advertisement),
            "links": self._link_count(),
            "monitors": 0,
            "nodes": nodes,
        }

    def _link_count(self) -> int:
        """Open links to paired peers."""
        return 0

    # -- link events (every link, to peers and monitors alike) ------------------

    def _link_opened(self, address: str, again: bool) -> None:
        """Tell the observer a link is up (see :meth:`coterie.observe.Observer.link_opened`)."""
        if self._observer is not None:
            self._observed_links += 1
            self._observer.link_opened(address, again)

    def _link_closed(self, address: str, error: BaseException | None) -> None:
        """Tell the observer a link it heard of is gone."""
        if self._observer is not None:
            self._observed_links -= 1
            self._observer.link_closed(address, error)
            if self._observed_links <= 0 and self._links_gone is not None:
                self._links_gone.set()

    async def _wait_links_gone(self) -> None:
        """Wait (bounded) until the links this component closed have said so.

        A closed transport reports its end a loop turn or more later; waiting
        here keeps every ``link_closed`` before the observer's ``closed``.
        """
        if self._observed_links <= 0:
            return
        self._links_gone = asyncio.Event()
        try:
            async with asyncio.timeout(LINKS_GONE_TIMEOUT):
                await self._links_gone.wait()
        except TimeoutError:
            log.debug("%r closed with %d link(s) still closing", self, self._observed_links)
        finally:
            self._links_gone = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.advertisement.get('key')!r}>"

    # -- hooks for roles -------------------------------------------------------

    async def _bind(self) -> None:
        """Open listening sockets and fill the advertisement (binding roles)."""

    async def _unbind(self) -> None:
        """Close what ``_bind`` opened."""

    async def _shutdown(self) -> None:
        """Role-specific close, before discovery stops."""

    def _node_added(self, node: Node) -> None:
        """A pairing peer appeared."""

    def _node_updated(self, node: Node) -> None:
        """A pairing peer changed its advertisement."""

    def _node_removed(self, node: Node) -> None:
        """A pairing peer left or went silent."""

    def _linked_to(self, node_id: str) -> bool:
        """Whether this component holds a live link it opened to ``node_id``.

        Discovery leaves a goodbye for such a node to the link, which a forger
        cannot fake (:mod:`coterie.discovery.service`).
        """
        return False

    def _heard_from(self, node_id: str) -> float | None:
        """When a live link last carried bytes from ``node_id`` (loop time), or ``None``.

        Discovery keeps a node whose link is busy even when its hellos are
        lost (:meth:`coterie.protocol.nodes.NodeTable.sweep`).
        """
        return None

    def _foreign_node(self, event: str, node: Node) -> None:
        """A node that does not pair appeared, changed or left (monitors use it)."""

    # -- internals -------------------------------------------------------------

    def _pairs(self, node: Node) -> bool:
        return pairs(self.advertisement, node.advertisement, self.opposite)

    def _node_event(self, event: str, node: Node) -> None:
        if not self._pairs(node):
            self._foreign_node(event, node)
            return
        accepts = self._accepts
        if event == "added":
            if accepts is None or accepts(node):
                self._node_added(node)
        elif event == "updated":
            if accepts is None or accepts(node):
                self._node_updated(node)
            else:
                self._node_removed(node)
            return
        else:
            self._node_removed(node)
        for listener in list(self._node_listeners):
            try:
                listener(event, node)
            except Exception:
                log.exception("node listener of %r failed on %s", self, event)
