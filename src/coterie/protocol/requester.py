"""The requester side, whole: one machine that owns every rule between ``send`` and its answer.

Rule 1 (after h11, one machine per side): everything a requester decides
lives in :class:`RequesterProtocol`. It holds the three parts that decide:

- :class:`~coterie.protocol.routing.Router`: where a request goes, how long
  it waits, failover, deadlines, exactly-once answers;
- :class:`~coterie.protocol.liveness.Liveness`: which busy coterie responder
  to ping, which one is dead of silence;
- :class:`~coterie.protocol.binding.Bindings`: which advertisement routing
  trusts for a linked coterie responder (its link, not a hello);

and the rules *between* them, which used to sit in the asyncio adapter: a
frame is a pong, a bye, an advert or a reply; a bye or a discovery goodbye
stops new sends; an advert from a link (never a hello) changes what routing
trusts; a dead link counts a failure and is aborted; a link down resends or
fails its requests; a drained link of a node discovery dropped is closed.

Inputs are methods, each taking ``now`` (seconds, the adapter's clock):

=========================  ==================================================
input                      what happened
=========================  ==================================================
:meth:`submit`             a caller sends a :class:`Request` (with a
                           ``timeout``, an absolute ``deadline``, ``node=``)
:meth:`cancel`             the caller gave up (its task was cancelled)
:meth:`frame`              a frame arrived on a peer's link
:meth:`bad_frame`          a frame on a peer's link could not be decoded
:meth:`link_up`            a link to a responder is up
:meth:`link_down`          a link to a responder dropped
:meth:`node_added`         discovery (re)announced a node
:meth:`node_updated`       a hello changed a node's advertisement
:meth:`node_removed`       discovery dropped a node (goodbye or timeout)
:meth:`wake`               the timer reached :meth:`next_wakeup`
:meth:`close`              the requester closes: fail everything
=========================  ==================================================

Each returns a list of outputs for the adapter to carry out, in order:

- :class:`~coterie.protocol.routing.Send`: write this frame on that peer's
  link (requests and pings alike);
- :class:`~coterie.protocol.routing.Resolve` /
  :class:`~coterie.protocol.routing.Fail`: answer the caller;
- :class:`Close`: the link to a node discovery dropped holds nothing more;
- :class:`Abort`: a busy peer fell silent: drop its link now (its requests
  were already counted as a failure and are resent on :meth:`link_down`);
- :class:`Forged`: a hello was ignored (it would change what a live link
  verified): the adapter logs it and does not pass the hello on;
- :class:`Cancel`: tell ``peer`` its caller gave up on ``request_id``.

and, after every input, :attr:`RequesterProtocol.wakeup` says by when the
adapter's one timer must fire (``None``: nothing new is due; an armed timer
only ever moves earlier, and on firing the adapter calls :meth:`wake` and
re-arms at :meth:`next_wakeup`).

The slot for cancellation (issue 25): a caller that gives up, through
:meth:`cancel`, yields :class:`Cancel` for the responder carrying the
request when that responder advertises :data:`CANCEL_ADVERTISED`. No
coterie responder advertises it yet and the adapter writes nothing for it
yet, so nothing new reaches the wire; the frame and the responder's side
come with issue 25 (Node cote responders never advertise it, so they never
get one). The expiry path (:meth:`wake`) will yield it too once the wire
exists. Deadlines handed down by a caller (issue 25) come in as the
request's absolute ``deadline``.

Beyond cote (issue 26), needing nothing new on the wire: ``node=`` pins a
request to one linked responder, and :meth:`serving` names the linked
responders that take a type, one request to each of which is a gather. A
reply with ``code: "retryable"`` (a handler raised ``Retryable``) puts its
request in a back-off wait (the jitter is the ``draw`` given to
:meth:`frame`); :attr:`wakeup` then says when it ends, and :meth:`wake`
sends it to another responder (see :mod:`coterie.protocol.routing`).

The machine never reads a clock, draws a random number or touches a socket
or a future: the same inputs always give the same outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from coterie.errors import CoterieError
from coterie.protocol.binding import Bindings
from coterie.protocol.liveness import Liveness, ping_frame, supports_ping
from coterie.protocol.routing import (
    Drained,
    Fail,
    Outcome,
    Request,
    Resolve,
    Router,
    Send,
)

__all__ = [
    "CANCEL_ADVERTISED",
    "Abort",
    "Cancel",
    "Close",
    "Forged",
    "Output",
    "RequesterProtocol",
    "check_request",
    "supports_cancel",
]

#: Advertisement field (and value) of a responder that takes a cancel
#: (issue 25; none does yet).
CANCEL_ADVERTISED = ("cancel", "cancel/1")


class Close(NamedTuple):
    """The link to ``peer``, a node discovery dropped, holds nothing more: close it."""

    peer: str


class Abort(NamedTuple):
    """``peer`` fell silent with requests in flight: drop its link at once."""

    peer: str
    #: Seconds it was silent (at least the liveness timeout).
    silent: float
    #: Requests it held.
    inflight: int


class Forged(NamedTuple):
    """A hello for ``peer`` was ignored: it would change what its live link verified."""

    peer: str
    #: Hellos ignored so far, this one included.
    so_far: int


class Cancel(NamedTuple):
    """Tell ``peer`` that the caller of ``request_id`` gave up (issue 25's slot)."""

    peer: str
    request_id: str


Output = Send | Resolve | Fail | Close | Abort | Forged | Cancel


def supports_cancel(advertisement: Mapping[str, Any] | None) -> bool:
    """Whether a responder's advertisement says it takes a cancel."""
    field, value = CANCEL_ADVERTISED
    return advertisement is not None and advertisement.get(field) == value


def check_request(request: Any) -> None:
    """Refuse what is not a request: a dict with a ``type``.

    Raises:
        TypeError: ``request`` is not a dict.
        ValueError: It has no ``type`` field.
    """
    if not isinstance(request, dict):
        raise TypeError(f"a request must be a dict, got {type(request).__name__}")
    if "type" not in request:
        raise ValueError("a request needs a 'type' field")


class RequesterProtocol:
    """Every rule of the requester side (see the module doc).

    Args:
        router: The router to decide with (balance, bounds); a default one
            when ``None``.
        liveness: The liveness bookkeeping (ping interval, silence bound); a
            default one when ``None``.
    """

    def __init__(self, router: Router | None = None, liveness: Liveness | None = None) -> None:
        #: The router; read its queries (counts, ``peers()``), feed this machine.
        self.router = Router() if router is None else router
        #: Who was heard from when (read-only for adapters).
        self.liveness = Liveness() if liveness is None else liveness
        self._bindings = Bindings()
        #: Nodes discovery dropped whose link is still up: closed once drained.
        self._gone: set[str] = set()
        #: By when the timer must fire after the last input (``None``: nothing new).
        self.wakeup: float | None = None

    # -- queries ----------------------------------------------------------------

    @property
    def forged(self) -> int:
        """Hellos ignored because they would change what a live link verified."""
        return self._bindings.forged

    def next_wakeup(self) -> float | None:
        """When :meth:`wake` next has work: a deadline, an attempt bound, a ping, a settle end."""
        due = self.router.next_deadline()
        tick = self.liveness.next_tick()
        if tick is not None and (due is None or tick < due):
            return tick
        return due

    def serving(self, request_type: Any, subset: Any = None) -> list[str]:
        """The linked responders (not leaving) that take ``request_type`` (and ``subset``)."""
        return self.router.serving(request_type, subset)

    # -- requests -------------------------------------------------------------------

    def submit(self, request: Request, now: float) -> list[Output]:
        """Send ``request`` now, or queue it (see the router).

        Raises:
            QueueFullError: It would have to wait and the queue is full.
            LookupError: It is pinned to a node that is not linked or does not serve it.
            ValueError: Its id is already live.
        """
        out: list[Output] = self.router.submit(request, now)  # type: ignore[assignment]
        due = self.router.due(request)
        if out and type(out[0]) is Send:
            tick = self.liveness.sent(out[0].peer, now)
            if tick is not None and (due is None or tick < due):
                due = tick
        self.wakeup = due
        return out

    def cancel(self, request_id: str, now: float) -> list[Output]:
        """The caller gave up on ``request_id``: withdraw it; it yields no answer.

        A responder carrying it that advertises :data:`CANCEL_ADVERTISED` is told
        (:class:`Cancel`).
        """
        request = self.router.get(request_id)
        peer = request.peer if request is not None else None
        out = self._carry(self.router.cancel(request_id), now)
        if peer is not None and supports_cancel(self.router.advertisement(peer)):
            out.append(Cancel(peer, request_id))
        self.wakeup = None
        return out

    def close(self, error: CoterieError) -> list[Output]:
        """Fail every live request with ``error`` (the requester is closing)."""
        self.wakeup = None
        return self.router.close(error)  # type: ignore[return-value]  # only Fail

    # -- links ------------------------------------------------------------------------

    def link_up(self, peer: str, advertisement: Mapping[str, Any], now: float) -> list[Output]:
        """A link to responder ``peer`` is up.

        A coterie responder (one that answers pings) has its routed fields bound
        to the link and gets a first ping at once, so it learns this link pings.
        """
        out: list[Output] = []
        if supports_ping(advertisement):
            self._bindings.bind(peer, advertisement)
            self.liveness.watch(peer, now)
            out.append(Send(peer, ping_frame(0)))
        out.extend(self._carry(self.router.peer_up(peer, advertisement, now), now))
        self.wakeup = self.next_wakeup()
        return out

    def link_down(self, peer: str, now: float) -> list[Output]:
        """The link to ``peer`` dropped: its requests are resent elsewhere or fail."""
        self.liveness.forget(peer)
        self._bindings.unbind(peer)
        self._gone.discard(peer)
        out = self._carry(self.router.link_lost(peer, now), now)
        self.wakeup = self.next_wakeup()
        return out

    def frame(self, peer: str, args: list[Any], now: float, draw: float = 1.0) -> list[Output]:
        """A frame ``args`` arrived on ``peer``'s link: a sign of life, and what it says.

        ``draw`` (a random value in ``[0, 1]``, the adapter's) is the jitter of
        the back-off wait when a reply asks for a retry (``code: "retryable"``).
        """
        kind = self.liveness.frame(peer, args, now)
        if kind == "reply":
            out: list[Output] = self.router.reply(peer, args, now, draw)  # type: ignore[assignment]
            self.wakeup = self.router.next_retry()  # a retry's back-off wait ends then
            if len(out) > 1:  # the last reply of a leaving peer: Drained
                out = self._carry(out, now)  # type: ignore[arg-type]
            return out
        if kind == "bye":  # it is closing: nothing new goes there
            out = self._carry(self.router.peer_leaving(peer), now)
        elif kind == "advert":  # what it serves, said where no one else can
            advertisement = self._bindings.from_link(peer, args[1])
            if advertisement is None:
                out = []
            else:
                out = self._carry(self.router.peer_changed(peer, advertisement, now), now)
        else:  # a pong: a sign of life only
            out = []
        self.wakeup = self.next_wakeup()
        return out

    def bad_frame(self, peer: str, now: float) -> list[Output]:
        """A frame on ``peer``'s link could not be decoded: one failure for ejection."""
        self.wakeup = None
        return self._carry(self.router.peer_failed(peer, now), now)

    # -- discovery ----------------------------------------------------------------------

    def node_added(self, peer: str, now: float) -> list[Output]:
        """Discovery announced ``peer``: one that was leaving may take requests again."""
        self._gone.discard(peer)
        out = self._carry(self.router.peer_returned(peer, now), now)
        self.wakeup = self.next_wakeup()
        return out

    def node_updated(self, peer: str, advertisement: Mapping[str, Any], now: float) -> list[Output]:
        """A hello changed ``peer``'s advertisement.

        Returns:
            ``[Forged]`` alone when the hello is ignored (the adapter must not
            pass it on); else what routing does with the new advertisement.
        """
        if not self._bindings.from_discovery(peer, advertisement):
            self.wakeup = None
            return [Forged(peer, self._bindings.forged)]
        out = self._carry(self.router.peer_changed(peer, advertisement, now), now)
        self.wakeup = self.next_wakeup()
        return out

    def node_removed(self, peer: str, now: float) -> list[Output]:
        """Discovery dropped ``peer``: send nothing new there; close its link once drained."""
        self._gone.add(peer)
        self.wakeup = None
        return self._carry(self.router.peer_leaving(peer), now)

    # -- time ------------------------------------------------------------------------------

    def wake(self, now: float) -> list[Output]:
        """The timer fired: expire what is due, ping quiet busy peers, abort dead ones."""
        out = self._carry(self.router.expire(now), now)
        pings, dead = self.liveness.tick(now, self.router.inflight_on)
        for peer, token in pings:
            out.append(Send(peer, ping_frame(token)))
        for peer in dead:
            inflight = self.router.inflight_on(peer)
            out.extend(self._carry(self.router.peer_failed(peer, now), now))
            out.append(Abort(peer, self.liveness.timeout, inflight))
        self.wakeup = self.next_wakeup()
        return out

    # -- internals --------------------------------------------------------------------------

    def _carry(self, outcomes: list[Outcome], now: float) -> list[Output]:
        """The router's outcomes as outputs: sends start liveness; drains of gone nodes close."""
        out: list[Output] = []
        for outcome in outcomes:
            if type(outcome) is Send:
                self.liveness.sent(outcome.peer, now)
                out.append(outcome)
            elif type(outcome) is Drained:
                if outcome.peer in self._gone:
                    out.append(Close(outcome.peer))
            else:
                out.append(outcome)  # type: ignore[arg-type]  # Resolve or Fail
        return out
