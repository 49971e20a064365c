"""Link liveness: telling a silent peer from a slow one, within a bound (sans-I/O).

Why: a responder whose host is partitioned away, or whose process is frozen,
sends nothing and often leaves no trace TCP can see quickly (Linux sends no
keepalive probe while data is unacknowledged, and a frozen process's kernel
still acknowledges). Without a check, requests in flight there wait out
their whole bound while healthy responders idle.

The rule: a requester pings each peer that advertises :data:`ADVERTISED`
every ``interval`` seconds, and any frame from the peer (a reply, a pong)
counts as a sign of life. A peer silent for ``timeout`` seconds is dead: the
adapter drops its link, and the router sends its requests elsewhere. Pings
are tiny and answered by the responder's read callback itself, so a slow
handler never delays a pong.

Node cote responders do not advertise the field and are never pinged (they
would take a ping for a request); TCP keepalive and ``TCP_USER_TIMEOUT``
cover them.

:class:`Liveness` holds the clock-free bookkeeping: feed it what happened
with ``now``, call :meth:`Liveness.tick` when :meth:`Liveness.next_tick` is
due, and carry out the pings and drops it returns.
"""

from __future__ import annotations

import math
from typing import Any

from coterie.protocol.framing import encode_frame

__all__ = [
    "ADVERTISED",
    "BYE",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "PING",
    "PONG",
    "Liveness",
    "bye_frame",
    "is_bye",
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


def is_bye(args: list[Any]) -> bool:
    """Whether a received frame is a closing responder's goodbye."""
    return len(args) == 1 and args[0] == BYE


def is_pong(args: list[Any]) -> bool:
    """Whether a received frame is a pong."""
    return len(args) == 2 and args[0] == PONG


class Liveness:
    """Who was heard from when; who to ping; who is dead.

    Args:
        interval: Seconds between pings to each watched peer.
        timeout: Seconds of silence after which a watched peer is dead.

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
        #: When each watched peer was last heard from (adapters on a hot path
        #: may update it directly, as :meth:`heard` does).
        self.heard_at: dict[str, float] = {}
        self._pinged: dict[str, float] = {}
        self._token = 0

    @property
    def watched(self) -> list[str]:
        """The peers being watched."""
        return list(self.heard_at)

    def watch(self, peer: str, now: float) -> None:
        """Start watching ``peer`` (its link just came up: that counts as heard)."""
        self.heard_at[peer] = now
        self._pinged[peer] = now

    def forget(self, peer: str) -> None:
        """Stop watching ``peer`` (its link is gone)."""
        self.heard_at.pop(peer, None)
        self._pinged.pop(peer, None)

    def heard(self, peer: str, now: float) -> None:
        """A frame arrived from ``peer``."""
        if peer in self.heard_at:
            self.heard_at[peer] = now

    def silence(self, peer: str, now: float) -> float:
        """Seconds since ``peer`` was last heard (0 for an unwatched one)."""
        heard = self.heard_at.get(peer)
        return 0.0 if heard is None else now - heard

    def next_tick(self) -> float | None:
        """When :meth:`tick` next has something to do, or ``None``."""
        if not self.heard_at:
            return None
        due = math.inf
        for peer, heard in self.heard_at.items():
            due = min(due, self._pinged[peer] + self.interval, heard + self.timeout)
        return due

    def tick(self, now: float) -> tuple[list[tuple[str, int]], list[str]]:
        """What to do now.

        Returns:
            ``(pings, dead)``: ``(peer, token)`` pairs to send
            :func:`ping_frame` to, and peers silent for ``timeout`` or more,
            which are no longer watched.
        """
        pings: list[tuple[str, int]] = []
        dead: list[str] = []
        for peer, heard in list(self.heard_at.items()):
            if now - heard >= self.timeout:
                dead.append(peer)
                self.forget(peer)
            elif now - self._pinged[peer] >= self.interval:
                self._token += 1
                self._pinged[peer] = now
                pings.append((peer, self._token))
        return pings, dead
