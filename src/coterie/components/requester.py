"""Requester: sends requests to matching responders and awaits the answers.

Design: this module is the asyncio adapter of the sans-I/O
:class:`~coterie.protocol.requester.RequesterProtocol`, the one machine that
makes every routing, waiting, failover, deadline, liveness and exactly-once
decision of the requester side. The adapter only:

- keeps one link per discovered responder, reconnected while the node
  lives (:class:`~coterie.components.connecting.ConnectingComponent`);
- feeds the machine what happens (a send, a cancelled caller, a frame, a link
  up or down, a node announced, changed or dropped, the timer), with
  ``loop.time()`` as ``now``;
- carries out its outputs: writes frames (requests and pings), resolves or
  fails the caller's future, closes a drained link, aborts a dead one, logs
  an ignored hello;
- owns the futures, the sockets and the one
  :class:`~coterie.transport.timer.Alarm`, kept at or before the machine's
  :attr:`~coterie.protocol.requester.RequesterProtocol.wakeup` after every
  input;
- explains, from discovery, why a request finds no responder (logging only).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
from typing import Any, Final, Literal, TypeVar, overload

from mypy_extensions import mypyc_attr

from coterie._logbudget import LogBudget
from coterie.components.connecting import ConnectingComponent
from coterie.errors import CoterieError, NotRunningError, RequestTimeoutError
from coterie.observe import RequesterStats
from coterie.protocol.liveness import (
    DEFAULT_INTERVAL as DEFAULT_LIVENESS_INTERVAL,
)
from coterie.protocol.liveness import (
    DEFAULT_TIMEOUT as DEFAULT_LIVENESS_TIMEOUT,
)
from coterie.protocol.liveness import Liveness
from coterie.protocol.messages import encode_request, split_request
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import pairs, serves, unserved
from coterie.protocol.requester import (
    Abort,
    Close,
    Forged,
    Output,
    RequesterProtocol,
    check_request,
)
from coterie.protocol.routing import Balance, Fail, Request, Resolve, Router, Send
from coterie.transport.link import Link
from coterie.transport.peers import Peer
from coterie.transport.timer import Alarm
from coterie.typed import Contract, answer_checker, request_body

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "PendingBalancedRequester",
    "Requester",
    "TimeBalancedRequester",
]

log = logging.getLogger("coterie.requester")

#: Seconds a request may take, waiting included, when nothing else is set.
DEFAULT_REQUEST_TIMEOUT = 60.0
#: The answer type of a typed call (coterie.typed).
R = TypeVar("R")


class _Unset(enum.Enum):
    """The type of :data:`_UNSET`: "no timeout given", unlike ``None`` (no bound).

    A typed sentinel (not a bare ``object()``), so the compiled build's
    run-time type checks accept it.
    """

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET
#: Distinct "why nothing answers" reasons said at WARNING per requester, at most.
_MAX_REASONS = 32


# Compiled (mypyc), it stays open to subclasses in Python, yours included.
@mypyc_attr(allow_interpreted_subclasses=True)
class Requester(ConnectingComponent):
    """Sends requests; round robin over responders by default.

    Args:
        name: Name shown to peers.
        timeout: Default bound in seconds for each request, waiting for a
            responder included; ``None`` waits forever. Defaults to
            ``COTE_REQUEST_TIMEOUT`` (ms) or :data:`DEFAULT_REQUEST_TIMEOUT`.
        balance: ``"round_robin"``, ``"pending"`` or ``"time"``; defaults
            to the class's :attr:`default_balance` (round robin).
        max_waiting: Most requests that may wait for a responder at once.
        backlog_settle: Seconds to gather responders before spreading a
            backlog that waited for the first one.
        requests: Request types this requester sends, advertised as
            ``requests`` for monitors.
        attempt_timeout: How long one attempt on one responder may take
            before it counts as a failure there and the request is sent to
            another (``retry=True`` requests only): ``"auto"`` adapts to the
            replies seen, a number fixes it, ``None`` turns it off. Responders
            that keep failing are ejected from the rotation for a while (see
            :mod:`coterie.protocol.routing`).
        liveness_interval: Seconds of quiet on a link with requests in
            flight before its coterie responder is pinged, and between pings.
            Idle links are never pinged.
        liveness_timeout: A coterie responder with requests in flight quiet
            this long (no reply, no pong) is dropped and its requests go
            elsewhere (see :mod:`coterie.protocol.liveness`).
        status_interval: Seconds between status reports to monitors (see
            :mod:`coterie.components.monitorable`).
        **kwargs: See :class:`~coterie.components.base.Component`.
    """

    role = "req"
    opposite = "rep"
    peer_label = "responder"
    #: The balance used when none is given (subclasses change it).
    default_balance: Balance = "round_robin"

    def __init__(
        self,
        name: str | None = None,
        *,
        timeout: float | _Unset | None = _UNSET,
        balance: Balance | None = None,
        max_waiting: int = 10_000,
        backlog_settle: float = 0.05,
        requests: list[str] | None = None,
        attempt_timeout: float | Literal["auto"] | None = "auto",
        liveness_interval: float = DEFAULT_LIVENESS_INTERVAL,
        liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        extra = dict(kwargs.pop("advertisement", None) or {})
        if requests is not None:
            extra["requests"] = list(requests)
        super().__init__(name, advertisement=extra, **kwargs)
        if timeout is _UNSET:
            timeout = self.variables.request_timeout or DEFAULT_REQUEST_TIMEOUT
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
        self.timeout: float | None = timeout
        self._machine = RequesterProtocol(
            Router(
                balance=self.default_balance if balance is None else balance,
                max_waiting=max_waiting,
                settle=backlog_settle,
                attempt_timeout=attempt_timeout,
            ),
            Liveness(interval=liveness_interval, timeout=liveness_timeout),
        )
        self._router = self._machine.router  # its queries, for stats()
        self._alarm = Alarm(self._on_timer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._forgeries = LogBudget(log)
        self._ids = 0
        self._started_at = 0.0
        #: Reasons already said at WARNING (bounded by _MAX_REASONS).
        self._said_why: set[str] = set()
        self._id_prefix = str(os.getpid())

    # -- public ----------------------------------------------------------------

    def stats(self) -> RequesterStats:
        """What this requester holds now: requests in flight and waiting, per responder.

        See :class:`coterie.observe.RequesterStats`.
        """
        router = self._router
        now = self._loop.time() if self._loop is not None else None
        return RequesterStats(
            **self._stats_fields(),
            in_flight=router.inflight,
            waiting=router.waiting,
            in_flight_on={peer: router.inflight_on(peer) for peer in router.peers()},
            ejected=() if now is None else tuple(router.ejected(now)),
            ejections=router.ejections,
            resent=router.resent,
            attempts_expired=router.attempts_expired,
            late_replies=router.late_replies,
        )

    def serves(self, request_type: str) -> bool:
        """Whether a linked responder, not leaving, serves ``request_type`` now.

        What ``/readyz`` checks (:mod:`coterie.serving`) for each type in
        ``requests=``.
        """
        return bool(self._machine.serving(request_type))

    async def send(
        self,
        request: dict[str, Any],
        *,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
        node: str | None = None,
    ) -> Any:
        """Send a request and return the responder's result.

        Args:
            request: A JSON-serialisable dict with a ``type``. ``__subset``
                routes to responders advertising that subset; ``__timeout``
                (ms) is cote's per-request bound.
            timeout: Seconds for this request, waiting included; defaults to
                ``__timeout`` or the requester's ``timeout``.
            retry: Resend to another responder if the link carrying it is
                lost (default). ``False`` for work that must not run twice: it
                then fails fast with :class:`~coterie.LinkLostError`.
            node: Send to this responder only (its node id, as
                :meth:`gather` and ``stats().in_flight_on`` name it); if its
                link drops, the request waits for that node within the bound.

        Raises:
            RemoteError: The handler failed; carries its message.
            RequestTimeoutError: No answer within the bound (a ``TimeoutError``).
            LinkLostError: ``retry=False`` and the link was lost mid-flight.
            LookupError: ``node`` names no linked responder that serves the type.
            QueueFullError: Too many requests are already waiting.
            FrameTooLargeError: The request exceeds ``max_frame_size``.
            TypeError, ValueError: The request is not a dict with a type.
            NotRunningError: The requester is not started or is closing.
        """
        if not self._started or self._closing:
            raise NotRunningError(f"{self!r} is not running: use 'async with' or await start()")
        check_request(request)
        request, subset, wire_timeout = split_request(request)
        if timeout is _UNSET:
            timeout = wire_timeout if wire_timeout is not None else self.timeout
        self._ids += 1
        request_id = f"{self._id_prefix}:{self._ids}"
        observer = self._observer  # metrics, tracing, ...; None when off
        if observer is not None:
            request = observer.request_begin(request, request_id)
        try:
            frame = encode_request(request, request_id, self.max_frame_size)
            loop = self._loop or asyncio.get_running_loop()
            pending = Request(
                request_id,
                frame,
                request["type"],
                subset=subset,
                retry=retry,
                timeout=timeout,
                node=node,
            )
            now = loop.time()
            outputs = self._machine.submit(pending, now)
        except BaseException as exc:
            if observer is not None:
                observer.request_end(request_id, request["type"], exc)
            raise
        future: asyncio.Future[Any] = loop.create_future()
        pending.waiter = future
        self._apply(outputs)
        if pending.peer is None and not pending.done:
            self._waiting(pending.type)
        try:
            return await future
        except asyncio.CancelledError:
            pending.waiter = None
            self._apply(self._machine.cancel(request_id, self._now()))
            if observer is not None:
                observer.request_end(request_id, request["type"], asyncio.CancelledError())
            raise

    @overload
    async def call(
        self,
        request: Any,
        *,
        returns: type[R],
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> R: ...

    @overload
    async def call(
        self,
        request: Contract[R],
        *,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> R: ...

    @overload
    async def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> Any: ...

    async def call(
        self,
        request: Any,
        *,
        returns: Any = None,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> Any:
        """Send a request model (or dict) and return its answer, checked against its type.

        A typed :meth:`send` (see :mod:`coterie.typed`): a msgspec ``Struct``
        or pydantic ``BaseModel`` is sent as its fields plus ``type`` (its
        class variable); the answer is checked against ``returns``, else the
        model's ``Contract[R]``, and converted when that type is a model.

        Raises:
            TypeError: The request cannot be sent as JSON or has no type, or
                the answer is not of the expected type.
            RemoteError: As :meth:`send`; ``code == "invalid"`` when the
                request does not match the handler's contract.
        """
        check = answer_checker(request, returns)
        answer = await self.send(request_body(request), timeout=timeout, retry=retry)
        return answer if check is None else check(answer)

    async def gather(
        self, request: dict[str, Any], *, timeout: float | _Unset | None = _UNSET
    ) -> dict[str, Any]:
        """Send ``request`` to every linked responder that serves it; collect the answers.

        Each responder gets its own copy (pinned with ``node=``, as
        :meth:`send` does it), so nothing new goes on the wire: Node cote
        responders answer too.

        Args:
            request: As for :meth:`send`.
            timeout: Seconds for every answer; defaults as for :meth:`send`.

        Returns:
            ``{node id: answer or error}`` once every responder answered or the
            bound ended: an error is the exception the :meth:`send` to it raised
            (:class:`~coterie.RemoteError` for a failed handler,
            :class:`~coterie.RequestTimeoutError` for one that did not answer in
            time, which marks it as timed out).

        Raises:
            LookupError: No linked responder serves the request's type (and
                ``__subset``): there is no one to ask.
            TypeError, ValueError: The request is not a dict with a type.
            NotRunningError: The requester is not started or is closing.
        """
        if not self._started or self._closing:
            raise NotRunningError(f"{self!r} is not running: use 'async with' or await start()")
        check_request(request)
        nodes = self._machine.serving(request["type"], request.get("__subset"))
        if not nodes:
            raise LookupError(
                f"gather: no linked responder serves {request['type']!r}"
                + ("" if request.get("__subset") is None else f" in subset {request['__subset']!r}")
                + f"; {self.connected} responder(s) linked"
            )
        answers = await asyncio.gather(
            *(self.send(dict(request), timeout=timeout, node=node) for node in nodes),
            return_exceptions=True,
        )
        return dict(zip(nodes, answers, strict=True))

    def _status_traffic(self) -> dict[str, dict[str, int]]:
        # The router counts requests and error replies per link.
        return {
            peer: {"requests": requests, "errors": errors}
            for peer, (requests, errors) in self._router.traffic().items()
        }

    # -- the router's outcomes and timer -------------------------------------------

    def _apply(self, outputs: list[Output]) -> None:
        """Carry out the machine's outputs, then keep the timer by its wake-up."""
        observer = self._observer
        for output in outputs:
            if type(output) is Send:
                peer = self._links.peers.get(output.peer)
                if peer is not None and peer.link is not None:
                    peer.link.write(output.frame)
            elif type(output) is Resolve:
                future = output.request.waiter
                if future is not None and not future.done():
                    future.set_result(output.value)
                if observer is not None:
                    observer.request_end(output.request.id, output.request.type, None)
            elif type(output) is Fail:
                if output.request.peer is None and type(output.error) is RequestTimeoutError:
                    output = Fail(output.request, self._explained(output))
                future = output.request.waiter
                if future is not None and not future.done():
                    future.set_exception(output.error)
                if observer is not None:
                    observer.request_end(output.request.id, output.request.type, output.error)
            elif type(output) is Close:
                drained = self._links.peers.get(output.peer)
                if drained is not None and drained.link is not None:
                    drained.link.close()
            elif type(output) is Abort:
                dead = self._links.peers.get(output.peer)
                if dead is not None and dead.link is not None:
                    log.warning(
                        "responder %s at %s silent for %.2g s with %d request(s) in flight; "
                        "dropping its link",
                        dead.node.advertisement.get("name"),
                        dead.link.peer,
                        output.silent,
                        output.inflight,
                    )
                    dead.link.abort()
            elif type(output) is Forged:
                self._forgeries.warning(
                    "ignored a hello for responder %s that would change what its live link "
                    "verified (types, subset, namespace, key): forged? (%d so far)",
                    output.peer,
                    output.so_far,
                )
            # Cancel: issue 25 writes the cancel frame here; no responder
            # advertises it yet, so nothing new goes on the wire.
        wakeup = self._machine.wakeup
        if wakeup is not None:
            self._alarm.keep(wakeup)

    # -- saying why nothing answers -------------------------------------------------

    def why_waiting(self, request_type: Any = None) -> str | None:
        """Why a request of ``request_type`` finds no responder, as far as discovery shows.

        Names each responder on the mesh that would serve the type but does
        not pair (namespace, key, environment or TLS differ; see
        :func:`coterie.protocol.pairing.unserved`), or says that nothing at all
        is heard and in which discovery scope. ``None`` when a pairing
        responder that serves the type is known (it may not be linked yet).
        """
        settings = self.discovery_settings
        if self.discovery is None or settings is None:
            return None
        nodes = [n.advertisement for n in self.discovery.nodes.values()]
        scope = f"{settings.scope}, port {settings.port}"
        if not nodes:
            return f"nothing at all is heard on the mesh ({scope})"
        if any(
            pairs(self.advertisement, adv, "rep")
            and (request_type is None or serves(adv, request_type))
            for adv in nodes
        ):
            return None
        said = unserved(self.advertisement, nodes, "rep", request_type, me="this requester")
        if said:
            return "; ".join(said)
        if not any(adv.get("axon_type") == "rep" for adv in nodes):
            return f"no responder is on the mesh, only {len(nodes)} other node(s) ({scope})"
        return None

    def _waiting(self, request_type: Any) -> None:
        """A request waits: one WARNING per distinct reason, once discovery had a hello's time."""
        settings, loop = self.discovery_settings, self._loop
        if settings is None or loop is None:
            return
        if loop.time() - self._started_at < settings.hello_interval / 1000:
            return  # the mesh may simply not be heard yet
        self._warn_why(request_type, self.why_waiting(request_type))

    def _warn_why(self, request_type: Any, why: str | None) -> None:
        if why is None or why in self._said_why:
            return
        if len(self._said_why) >= _MAX_REASONS:
            return  # bounded: a flood of types cannot grow it
        self._said_why.add(why)
        log.warning("%r: requests of type %r wait: %s", self, request_type, why)

    def _explained(self, failed: Fail) -> CoterieError:
        why = self.why_waiting(failed.request.type)
        if why is None:
            return failed.error
        self._warn_why(failed.request.type, why)
        return RequestTimeoutError(f"{failed.error}: {why}")

    def _on_timer(self) -> None:
        self._apply(self._machine.wake(self._now()))

    def _now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    # -- discovery hooks ----------------------------------------------------------

    async def _bind(self) -> None:
        await super()._bind()
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()

    def _node_added(self, node: Node) -> None:
        super()._node_added(node)
        if not self._closing:
            # It may have come back before its old link dropped.
            self._apply(self._machine.node_added(node.id, self._now()))

    def _node_updated(self, node: Node) -> None:
        outputs = self._machine.node_updated(node.id, node.advertisement, self._now())
        if outputs and type(outputs[0]) is Forged:
            self._apply(outputs)  # logged; the hello goes no further
            return
        super()._node_updated(node)
        self._apply(outputs)

    def _node_removed(self, node: Node) -> None:
        # Stop reconnecting; send nothing new; close once its replies are in.
        super()._node_removed(node)
        self._apply(self._machine.node_removed(node.id, self._now()))

    # -- links --------------------------------------------------------------------

    def _link_up(self, peer: Peer) -> None:
        super()._link_up(peer)
        if peer.link is not None:
            peer.link.on_bad_frame = self._bad_frame
        self._apply(self._machine.link_up(peer.id, peer.node.advertisement, self._now()))

    def _link_down(self, peer: Peer, exc: Exception | None) -> None:
        super()._link_down(peer, exc)
        before = self._router.resent
        outputs = self._machine.link_down(peer.id, self._now())
        if self._router.resent > before:
            log.info(
                "resending %d request(s) lost with %s",
                self._router.resent - before,
                peer.node.advertisement.get("name"),
            )
        self._apply(outputs)

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        peer: Peer | None = link.context
        if peer is not None and peer.link is link:
            now = self._loop.time()  # type: ignore[union-attr]  # set when started
            self._apply(self._machine.frame(peer.id, args, now, random.random()))

    def _bad_frame(self, link: Link, reason: str) -> None:
        peer: Peer | None = link.context
        if peer is not None and peer.link is link:
            self._apply(self._machine.bad_frame(peer.id, self._now()))

    async def _shutdown(self) -> None:
        self._alarm.cancel()
        self._apply(
            self._machine.close(NotRunningError(f"{self!r} closed before the request was answered"))
        )
        await super()._shutdown()


class PendingBalancedRequester(Requester):
    """A requester that sends each request to the responder with fewest in flight."""

    default_balance: Balance = "pending"


class TimeBalancedRequester(Requester):
    """A requester that favours the responder with the fastest recent replies."""

    default_balance: Balance = "time"
