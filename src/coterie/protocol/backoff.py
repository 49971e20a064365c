"""Back-off: how long to stay away after a failure, and when a peer is gone (sans-I/O).

One rule, two users:

- outlier ejection (:mod:`coterie.protocol.ejection`) keeps a peer out of
  the rotation for :attr:`Backoff.delay`, 1 s doubling to 30 s while its
  probes keep failing;
- reconnecting (:class:`Reconnect`, driven by
  :mod:`coterie.transport.peers`) waits up to :attr:`Backoff.delay` between
  attempts, 50 ms doubling to 0.5 s, so a host back from a partition is
  linked again within about a second; the etcd and Redis discovery media
  retry the same way, 50 ms doubling to 2 s
  (:class:`coterie.transport.retry.Retry`).

A :class:`Backoff` doubles on every failure up to its ceiling and starts
over on success. The wait itself has *full jitter*: a draw in ``[0, 1]``
times the delay, so the nodes that lost one server together (a Redis or
etcd restart) do not all come back at the same instants. The draw is an
argument: this module draws nothing; the adapter passes ``random.random()``
and a test passes the values it wants. Ejection passes ``1.0`` (no jitter):
its delay is a penalty, not a schedule shared with other nodes.

:class:`Reconnect` adds the one rule of connecting: a refused connection
means nothing listens on the advertised port any more, so the node is gone
(its next hello brings it back) and is not retried.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CONNECT_TIMEOUT",
    "RECONNECT_FIRST",
    "RECONNECT_MAX",
    "Backoff",
    "ConnectFailure",
    "Reconnect",
    "dropped_at_once",
]

#: Reconnect back-off, first and largest delay in seconds; and the bound on
#: one attempt (connection and TLS handshake). On a LAN an attempt takes
#: milliseconds.
RECONNECT_FIRST, RECONNECT_MAX = 0.05, 0.5
CONNECT_TIMEOUT = 1.0

#: Why a connection attempt failed: refused (nothing listens), the peer's
#: certificate did not verify, or anything else (unreachable, timed out).
ConnectFailure = Literal["refused", "auth", "other"]


class Backoff:
    """A delay that doubles on each failure, up to a ceiling, and resets on success.

    Args:
        first: The first delay, in seconds.
        most: The largest delay, in seconds.

    Raises:
        ValueError: Unless ``0 < first <= most``.
    """

    __slots__ = ("delay", "first", "most")

    def __init__(self, first: float, most: float) -> None:
        if not 0 < first <= most:
            raise ValueError(f"back-off needs 0 < first <= most, got {first!r}, {most!r}")
        self.first = first
        self.most = most
        #: The delay the next failure waits.
        self.delay = first

    def failed(self, draw: float) -> float:
        """A failure: the seconds to wait now; the next delay doubles (up to ``most``).

        Args:
            draw: A random value in ``[0, 1]`` that the adapter draws; the
                wait is ``draw`` times the current delay (full jitter).
                ``1.0`` waits the whole delay.

        Raises:
            ValueError: When ``draw`` is outside ``[0, 1]``.
        """
        if not 0.0 <= draw <= 1.0:
            raise ValueError(f"a back-off draw is within [0, 1], got {draw!r}")
        delay = self.delay
        self.delay = min(delay * 2, self.most)
        return delay * draw

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self.delay = self.first


class Reconnect:
    """What to do after a failed connection attempt to a node that discovery still lists.

    Args:
        first: The first delay, in seconds.
        most: The largest delay, in seconds.
    """

    __slots__ = ("backoff",)

    def __init__(self, first: float = RECONNECT_FIRST, most: float = RECONNECT_MAX) -> None:
        self.backoff = Backoff(first, most)

    def failed(self, why: ConnectFailure, draw: float) -> float | None:
        """Seconds to wait before the next attempt, or ``None``: the node is gone.

        A refused connection means the process is gone: drop the node now
        (it returns with its next hello) rather than retry until discovery
        times it out. Anything else is retried with back-off.

        Args:
            why: Why the attempt failed.
            draw: The jitter, a random value in ``[0, 1]`` (:meth:`Backoff.failed`).
        """
        if why == "refused":
            return None
        return self.backoff.failed(draw)

    def lost(
        self, frames: int, lived: float, draw: float, *, by_peer: bool = False
    ) -> float | None:
        """A link closed while the node is still listed: seconds to wait before reconnecting.

        A link that delivered frames worked: the back-off starts over and the
        reconnect is at once. One that delivered nothing and lived less than
        :data:`CONNECT_TIMEOUT` counts as a failed attempt, so a peer that
        accepts and then drops every link (a TLS peer refusing this side's
        certificate after the handshake, a crashing process) is retried
        with back-off, never in a tight loop.

        A link that worked and that the peer closed cleanly (``by_peer``: an
        end of stream, not a reset or a timeout) means the peer is closing,
        as cote's components close without a goodbye: ``None``, drop the
        node and do not reconnect (it returns with its next hello, if it
        lives on). cote never reconnects; reconnecting to a closing node
        would reach a closed port, or another component that took it.

        Args:
            frames: Frames the link delivered.
            lived: Seconds between the link opening and closing.
            draw: The jitter, a random value in ``[0, 1]`` (:meth:`Backoff.failed`).
            by_peer: Whether the peer ended the stream (TCP FIN or TLS close).
        """
        if dropped_at_once(frames, lived):
            return self.backoff.failed(draw)
        self.backoff.reset()
        return None if by_peer else 0.0


def dropped_at_once(frames: int, lived: float) -> bool:
    """A link closed before it delivered anything, within :data:`CONNECT_TIMEOUT` of opening.

    Over TLS 1.3 that is how a peer refusing this side's certificate looks
    from the connecting side: the handshake completes here, then the peer
    resets the link. :meth:`Reconnect.lost` backs off for such links.
    """
    return not frames and lived < CONNECT_TIMEOUT
