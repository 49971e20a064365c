"""Link liveness: telling a silent peer from a slow one, within a bound (sans-I/O).

Why: a responder whose host is partitioned away, or whose process is frozen,
sends nothing and often leaves no trace TCP can see quickly (Linux sends no
keepalive probe while data is unacknowledged, and a frozen process's kernel
still acknowledges). Without a check, requests in flight there wait out
their whole bound while healthy responders idle.

The rule, after gRPC keepalive and NATS: only a link with requests in
flight is checked, and only once it has been quiet for ``interval`` seconds.
Quiet is measured from the later of the last frame heard from the peer (a
reply, a pong) and the moment the link went from no request in flight to
some. Past ``interval`` of quiet the requester pings the peer that
advertises :data:`ADVERTISED`, once per ``interval``; a busy peer quiet for
``timeout`` seconds is dead: the adapter drops its link, and the router sends
its requests elsewhere. Pings are tiny and answered by the responder's read
callback itself, so a slow handler never delays a pong.

An idle link (nothing in flight) is never pinged: its cost is nil, and
TCP keepalive, ``TCP_USER_TIMEOUT`` (:mod:`coterie.transport.link`) and
discovery's node timeout find a peer that died meanwhile. A link under
steady load is never pinged either: its replies are its signs of life.

Deadlines sit in one heap keyed by due time, with at most one live entry
per busy peer: a wake-up costs the peers that are due, never a scan of
every link. Hearing a frame only stores its time; the heap entry is checked
against it when it comes due.

Node cote responders do not advertise the field and are never pinged (they
would take a ping for a request); TCP keepalive and ``TCP_USER_TIMEOUT``
cover them.

:class:`Liveness` holds the clock-free bookkeeping: feed it what happened
with ``now`` (:meth:`Liveness.sent` for a request written on a link,
:meth:`Liveness.frame` for a frame read from one, which also says what the
frame is), call :meth:`Liveness.tick` when :meth:`Liveness.next_tick` is
due, and carry out the pings and drops it returns.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Literal

from coterie.protocol.binding import ADVERT
from coterie.protocol.framing import encode_frame

__all__ = [
    "ADVERTISED",
    "BYE",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "PING",
    "PONG",
    "STALL_GRACE",
    "FrameKind",
    "Liveness",
    "bye_frame",
    "is_pong",
    "ping_frame",
    "pong_frame",
    "supports_ping",
]

#: The first argument of a ping frame ``[PING, token]`` and of its answer.
PING = "coterie:ping"
PONG = "coterie:pong"
#: A closing responder's word on the link itself, ``[BYE]``, sent only on
#: links that pinged (coterie requesters): take nothing new here. Unlike a
#: discovery goodbye, no one but the peer at the other end can send it.
BYE = "coterie:bye"
#: Advertisement field (and value) of responders that answer pings.
ADVERTISED = ("liveness", "ping/1")
#: Seconds between pings, and of silence after which a peer is dead.
DEFAULT_INTERVAL = 0.25
DEFAULT_TIMEOUT = 1.0
#: When a tick comes more than ``interval`` late, the loop stalled and
#: replies may sit unread: nobody is judged until this many seconds later.
STALL_GRACE = 0.01

#: What a frame from a watched link is: a pong (a sign of life only), a
#: closing responder's bye, its routed fields, or anything else (a reply, for
#: the router).
FrameKind = Literal["reply", "pong", "bye", "advert"]


def supports_ping(advertisement: dict[str, Any] | Any) -> bool:
    """Whether a peer's advertisement says it answers pings."""
    field, value = ADVERTISED
    return isinstance(advertisement, dict) and advertisement.get(field) == value


def ping_frame(token: int) -> bytes:
    """The frame a requester sends to check a peer."""
    return encode_frame((PING, token))


def pong_frame(token: Any) -> bytes:
    """The responder's answer to a ping carrying ``token``."""
    return encode_frame((PONG, token))


def bye_frame() -> bytes:
    """A closing responder's in-band goodbye."""
    return encode_frame((BYE,))


def is_pong(args: list[Any]) -> bool:
    """Whether a received frame is a pong."""
    return len(args) == 2 and args[0] == PONG


class _Watch:
    """One watched peer."""

    __slots__ = ("due", "heard", "since")

    def __init__(self, now: float) -> None:
        #: Last frame heard from it (its link coming up counts).
        self.heard = now
        #: When it went from nothing in flight to some; ``None`` while idle.
        self.since: float | None = None
        #: Its one live heap entry's time; ``None`` while idle.
        self.due: float | None = None


class Liveness:
    """Who was heard from when; which busy peer to ping; which is dead.

    Args:
        interval: Seconds of quiet on a busy link before a ping, and
            between pings.
        timeout: Seconds of quiet on a busy link after which the peer is dead.

    Raises:
        ValueError: Unless ``0 < interval < timeout``.
    """

    def __init__(
        self, *, interval: float = DEFAULT_INTERVAL, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if not 0 < interval < timeout:
            raise ValueError(
                f"liveness needs 0 < interval < timeout, got interval={interval!r}, "
                f"timeout={timeout!r}"
            )
        self.interval = interval
        self.timeout = timeout
        self._peers: dict[str, _Watch] = {}
        #: ``(due, peer)``; an entry is live while it equals the peer's ``due``.
        self._heap: list[tuple[float, str]] = []
        self._token = 0
        #: Set after a stalled tick: the next tick judges, whatever its lateness.
        self._grace: float | None = None

    @property
    def watched(self) -> list[str]:
        """The peers being watched."""
        return list(self._peers)

    @property
    def busy(self) -> list[str]:
        """Watched peers with requests in flight, as last told."""
        return [peer for peer, w in self._peers.items() if w.since is not None]

    def watch(self, peer: str, now: float) -> None:
        """Start watching ``peer`` (its link just came up: that counts as heard)."""
        self._peers[peer] = _Watch(now)

    def forget(self, peer: str) -> None:
        """Stop watching ``peer`` (its link is gone)."""
        self._peers.pop(peer, None)

    def heard(self, peer: str, now: float) -> None:
        """A frame arrived from ``peer``."""
        watch = self._peers.get(peer)
        if watch is not None:
            watch.heard = now

    def frame(self, peer: str, args: list[Any], now: float) -> FrameKind:
        """A frame ``args`` arrived from ``peer``: a sign of life; what is it?

        Returns:
            ``"pong"`` (nothing more to do), ``"bye"`` (the responder is
            closing: take nothing new there), ``"advert"`` (its routed
            fields, :mod:`coterie.protocol.binding`) or ``"reply"`` (for the
            router).
        """
        watch = self._peers.get(peer)
        if watch is not None:
            watch.heard = now
        n = len(args)
        if n == 2 and args[0] == PONG:
            return "pong"
        if n == 1 and args[0] == BYE:
            return "bye"
        if n == 2 and args[0] == ADVERT:  # its routed fields (coterie.protocol.binding)
            return "advert"
        return "reply"

    def sent(self, peer: str, now: float) -> float | None:
        """A request went out on ``peer``'s link.

        Returns:
            When :meth:`tick` is next due if this made ``peer`` busy (the
            adapter's timer must fire by then), else ``None``.
        """
        watch = self._peers.get(peer)
        if watch is None or watch.since is not None:
            return None
        watch.since = now
        due = watch.due = now + self.interval
        heapq.heappush(self._heap, (due, peer))
        return due

    def silence(self, peer: str, now: float) -> float:
        """Seconds since ``peer`` was last heard (0 for an unwatched one)."""
        watch = self._peers.get(peer)
        return 0.0 if watch is None else now - watch.heard

    def next_tick(self) -> float | None:
        """When :meth:`tick` next has something to do, or ``None``."""
        if self._grace is not None:
            return self._grace
        head = self._head()
        return None if head is None else head[0]

    def tick(
        self, now: float, inflight: Callable[[str], int]
    ) -> tuple[list[tuple[str, int]], list[str]]:
        """What to do now.

        Args:
            now: The time, in seconds.
            inflight: How many requests are in flight on a peer (the
                router's count); a peer with none is idle again and is
                no longer checked.

        Returns:
            ``(pings, dead)``: ``(peer, token)`` pairs to send
            :func:`ping_frame` to, and busy peers quiet for ``timeout`` or
            more, which are no longer watched.
        """
        pings: list[tuple[str, int]] = []
        dead: list[str] = []
        head = self._head()
        if head is None:
            self._grace = None
            return pings, dead
        if self._grace is None and head[0] + self.interval < now:
            # This loop stalled: replies may sit unread. Let it read first.
            self._grace = now + STALL_GRACE
            return pings, dead
        self._grace = None
        heap, peers, interval = self._heap, self._peers, self.interval
        while heap and heap[0][0] <= now:
            due, peer = heapq.heappop(heap)
            watch = peers.get(peer)
            if watch is None or watch.due != due or watch.since is None:
                continue  # forgotten, or a stale entry
            if inflight(peer) <= 0:
                watch.since = watch.due = None  # idle: left to TCP and discovery
                continue
            quiet_since = watch.heard if watch.heard > watch.since else watch.since
            quiet = now - quiet_since
            if quiet >= self.timeout:
                dead.append(peer)
                del peers[peer]
                continue
            if quiet >= interval:
                # Due and quiet: ping. An entry falls due one interval after
                # the last ping at the earliest, so pings are an interval apart.
                self._token += 1
                pings.append((peer, self._token))
                nxt = min(now + interval, quiet_since + self.timeout)
            else:
                nxt = quiet_since + interval
            watch.due = nxt
            heapq.heappush(heap, (nxt, peer))
        return pings, dead

    def _head(self) -> tuple[float, str] | None:
        """The earliest live heap entry, dropping stale ones above it."""
        heap, peers = self._heap, self._peers
        while heap:
            due, peer = heap[0]
            watch = peers.get(peer)
            if watch is not None and watch.due == due:
                return heap[0]
            heapq.heappop(heap)
        return None
