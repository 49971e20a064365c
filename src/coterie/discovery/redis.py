"""Redis discovery: cote's PUBLISH/SUBSCRIBE on the channel ``cote``, or one per group.

Design: :class:`RedisTransport` meets :class:`~coterie.discovery.medium.Announcing`:
it moves opaque datagrams over Redis channels, and names in each hello the
local address of its route to Redis. Parsing and the node table live in the
discovery service, as for UDP. The ``redis`` package is imported only when a
transport starts (the ``coterie[redis]`` extra).

Channels. cote publishes every hello on one channel, ``cote``, so Redis
delivers each hello to every node: N nodes saying hello every 2 s cost
N²/2 deliveries a second. With ``redis_channel="group"`` (for meshes without
Node peers, which listen on ``cote`` only) a component publishes on
``cote:<environment>/<namespace>`` and listens there and on
``cote:<environment>/+``, where observers (monitors, gateways) publish; an
observer listens to ``cote:<environment>/*``. A node then hears its own
group only (:mod:`coterie.protocol.groups`), and the mesh costs
Σ group² / 2 deliveries a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from typing import Any

from coterie.discovery.interfaces import route_to
from coterie.discovery.medium import Encoder, ReceiveCallback
from coterie.discovery.options import DiscoverySettings
from coterie.protocol.groups import OBSERVERS, group_of, is_observer
from coterie.transport.retry import Retry, jitter

__all__ = ["REDIS_CHANNEL", "RedisTransport"]

log = logging.getLogger("coterie.discovery")

#: The Redis channel cote publishes discovery packets on.
REDIS_CHANNEL = "cote"
_REDIS_RETRY_FIRST = 0.05


class RedisTransport:
    """cote's Redis discovery: PUBLISH/SUBSCRIBE on the channel ``cote``.

    The sender's address is unknown here, so each hello names it: the local
    address of the route to Redis (:meth:`send_each`), the address the
    other nodes of a Redis mesh reach this one by when they reach Redis the
    same way. Peers connect to it (or to the host name cote announces).

    Redis may restart or become unreachable while the mesh runs. The reader
    then logs one warning, resubscribes with the one back-off (up to 50 ms
    doubling to 2 s, with full jitter, :mod:`coterie.protocol.backoff`, so
    the nodes of a mesh do not all come back at once) and logs once more
    when it hears Redis again; publishing fails quietly meanwhile (a hello
    lost is sent again at the next interval). A component never crashes for
    a Redis outage.

    Args:
        settings: Resolved settings with ``redis`` set.
        retry_max: Longest wait between resubscribe attempts, in seconds.
        draw: The jitter of each wait, in ``[0, 1]``; random by default.
    """

    def __init__(
        self,
        settings: DiscoverySettings,
        *,
        retry_max: float = 2.0,
        draw: Callable[[], float] = jitter,
    ) -> None:
        if settings.redis is None:
            raise ValueError("RedisTransport needs redis settings")
        self._url = settings.redis.connection_url()
        self._grouped = settings.redis_channel == "group"
        #: Where hellos are published, and what is listened to.
        self.channel = REDIS_CHANNEL
        self.channels: tuple[str, ...] = (REDIS_CHANNEL,)
        self.patterns: tuple[str, ...] = ()
        self._retry = Retry(_REDIS_RETRY_FIRST, retry_max, draw=draw)
        self._pub: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        #: The local address of the route to Redis (127.0.0.1 until known).
        self.local_address = "127.0.0.1"
        #: How many times the subscription was lost and restored.
        self.reconnects = 0

    def scope(self, advertisement: dict[str, Any]) -> Hashable:
        """Pick the channels of the component's group (with ``redis_channel="group"``).

        Returns:
            The channels it publishes on and listens to (``None`` on cote's
            one channel): components that answer alike share one transport.
        """
        if not self._grouped:
            return None
        env, group = group_of(advertisement)
        self.channel = f"{REDIS_CHANNEL}:{env}/{group}"
        if is_observer(advertisement):
            self.channels, self.patterns = (), (f"{REDIS_CHANNEL}:{env}/*",)
        else:
            self.channels = (self.channel, f"{REDIS_CHANNEL}:{env}/{OBSERVERS}")
        return (self.channel, self.channels, self.patterns)

    async def start(self, receive: ReceiveCallback) -> None:
        """Connect, subscribe to ``cote`` (or the group's channels) and start reading.

        Raises:
            ImportError: Without the ``redis`` package (``coterie[redis]``).
            OSError: When Redis cannot be reached at start.
        """
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - optional extra
            raise ImportError(
                "Redis discovery needs the 'redis' package: pip install 'coterie[redis]'"
            ) from exc
        self._pub = aioredis.Redis.from_url(self._url)
        await self._pub.ping()
        await self._find_local_address()
        await self._subscribe()
        self._reader = asyncio.create_task(self._read(receive), name="coterie-redis-discovery")

    async def _find_local_address(self) -> None:
        found = await route_to(self._url, 6379)
        if found is not None:
            self.local_address = found

    async def _subscribe(self) -> None:
        self._pubsub = self._pub.pubsub()
        if self.channels:
            await self._pubsub.subscribe(*self.channels)
        if self.patterns:
            await self._pubsub.psubscribe(*self.patterns)

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read(self, receive: ReceiveCallback) -> None:
        retry = self._retry
        lost = False
        while True:
            try:
                if self._pubsub is None:
                    await self._subscribe()
                    if lost:
                        await self._find_local_address()
                        lost = False
                        self.reconnects += 1
                        log.warning("redis discovery at %s is back; listening again", self._url)
                    retry.reset()
                async for message in self._pubsub.listen():
                    if message.get("type") in ("message", "pmessage"):
                        data = message["data"]
                        raw = data if isinstance(data, bytes) else str(data).encode()
                        receive(raw, "0.0.0.0")
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of Redis is retried; said once
                if not lost:
                    lost = True
                    log.warning(
                        "redis discovery at %s lost (%s); retrying every %.2g s at most",
                        self._url,
                        exc or type(exc).__name__,
                        retry.most,
                    )
                await self._drop_subscription()
                await retry.pause()

    def send(self, data: bytes) -> None:
        """Publish a datagram on the ``cote`` channel (or the group's)."""
        self.send_each(lambda _address: data)

    def send_each(self, encode: Encoder) -> None:
        """Publish ``encode(local_address)`` on the ``cote`` channel (or the group's)."""
        if self._pub is None:
            return
        data = encode(self.local_address)
        if data is None:
            return
        task = asyncio.ensure_future(self._pub.publish(self.channel, data))
        self._pending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("redis discovery publish failed: %s", task.exception())

    async def close(self) -> None:
        """Unsubscribe and disconnect."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=1.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        await self._drop_subscription()
        if self._pub is not None:
            with contextlib.suppress(Exception):
                await self._pub.aclose()
            self._pub = None
