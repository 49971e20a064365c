"""Publisher: broadcasts events to every connected subscriber.

Design: like a Responder, the publisher listens on TCP before it announces
itself, so its port is in its first hello; subscribers that pair with it
(``sub-emitter``, same key and namespace) connect. ``publish`` frames exactly
``[topic, data]`` with cote's topic ``message::[namespace::]event`` and sends
the same bytes to every link; subscribers filter on their side.

Frames published in one turn of the event loop are joined and leave in one
write per subscriber at the end of that turn (or as soon as the batch
reaches 64 KiB).

cote semantics kept on purpose:

- Publishing while no subscriber is connected is a no-op: the event is not
  queued for subscribers that connect later. :meth:`Publisher.publish`
  returns how many subscribers it was sent to, and
  :meth:`Publisher.wait_subscribers` waits for them.
- ``broadcasts`` is advertised for monitors only; any event may be published.

Beyond cote: events shared by a group. A subscriber made with
``group="mailer"`` names itself on its link (:mod:`coterie.protocol.sharing`);
each event then goes to one live member of each group, round robin, and to
every subscriber in no group (Node cote subscribers included). A member
leaves the rotation when its link closes or discovery marks its node gone.

Beyond cote: output per subscriber is bounded. When a subscriber's unsent
bytes exceed ``max_buffer``, further events for it are dropped (with one
warning per episode and a count in :attr:`Publisher.dropped`) instead of
growing memory without bound; delivery resumes once it catches up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from coterie.components.listening import ListeningComponent
from coterie.errors import NotRunningError
from coterie.observe import PublisherStats
from coterie.protocol.messages import encode_publish, topic_for
from coterie.protocol.nodes import Node
from coterie.protocol.sharing import Sharing, read_member
from coterie.transport.link import Link

__all__ = ["DEFAULT_MAX_BUFFER", "Publisher"]

log = logging.getLogger("coterie.publisher")

#: Default bound on the unsent bytes held for one subscriber: 8 MiB.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024

_BATCH_BYTES = 64 * 1024


class _Subscription:
    """Per-subscriber bookkeeping: drops while it is too slow."""

    __slots__ = ("dropped", "dropping")

    def __init__(self) -> None:
        self.dropped = 0
        self.dropping = False


class Publisher(ListeningComponent):
    """Publishes events to subscribers.

    Args:
        name: Name shown to peers.
        broadcasts: Event names this publisher sends, advertised as
            ``broadcasts`` for monitors (not enforced, as in cote).
        host: Address to listen on.
        port: TCP port; 0 picks a free one.
        max_buffer: Most unsent bytes held per subscriber before its events
            are dropped.
        **kwargs: See :class:`~coterie.components.base.Component`
            (``namespace``, ``key``, ``discovery``, ...).
    """

    role = "pub-emitter"
    opposite = "sub-emitter"

    def __init__(
        self,
        name: str | None = None,
        *,
        broadcasts: list[str] | None = None,
        host: str = "0.0.0.0",
        port: int = 0,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        **kwargs: Any,
    ) -> None:
        extra = dict(kwargs.pop("advertisement", None) or {})
        if broadcasts is not None:
            if isinstance(broadcasts, str) or not all(isinstance(b, str) for b in broadcasts):
                raise TypeError("broadcasts must be a list of event names")
            extra["broadcasts"] = list(broadcasts)
        if not isinstance(max_buffer, int) or max_buffer <= 0:
            raise ValueError(f"max_buffer must be a positive number of bytes, got {max_buffer!r}")
        kwargs.setdefault("idle_timeout", None)  # subscribers never send a frame
        super().__init__(name, advertisement=extra, host=host, port=port, **kwargs)
        self.max_buffer = max_buffer
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        self._change = asyncio.Event()
        self._sharing: Sharing[Link] = Sharing()
        #: Frames picked for each group member in the batch being gathered.
        self._picks: dict[Link, list[bytes]] = {}
        #: Events published (counted once, however many subscribers got them).
        self.published = 0
        #: Event copies dropped because a subscriber was too slow.
        self.dropped = 0

    # -- public ----------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        """How many subscriber links are open."""
        return len(self._accepted)

    @property
    def groups(self) -> dict[str, int]:
        """How many live members each subscriber group has (``{}`` with none)."""
        return self._sharing.sizes()

    def stats(self) -> PublisherStats:
        """What this publisher holds now (see :class:`coterie.observe.PublisherStats`)."""
        return PublisherStats(
            **self._listener_fields(), published=self.published, dropped=self.dropped
        )

    async def wait_subscribers(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` subscribers are connected.

        Raises:
            TimeoutError: When they are not within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while len(self._accepted) < count:
                self._change.clear()
                await self._change.wait()

    async def publish(self, event: str, data: Any = None) -> int:
        """Send ``data`` as ``event`` to every connected subscriber.

        Subscribers in a group share it: one live member of each group gets
        it, round robin. With no subscriber connected this does nothing
        (cote's semantics).

        Args:
            event: The event name; the wire topic is
                ``message::[namespace::]event``.
            data: A JSON-serialisable value (or bytes, sent raw).

        Returns:
            How many subscribers the event was queued for (one per group).

        Raises:
            RuntimeError: The publisher is not started or is closing.
            TypeError, ValueError: ``event`` is not a non-empty string, or
                ``data`` cannot be serialised.
            FrameTooLargeError: The frame exceeds ``max_frame_size``.
        """
        if not self._started or self._closing:
            raise NotRunningError(f"{self!r} is not running: use 'async with' or await start()")
        if not isinstance(event, str) or not event:
            raise TypeError(f"event must be a non-empty string, got {event!r}")
        # Encoded even with no subscriber, so bad data fails the same way always.
        frame = encode_publish(topic_for(event, self.namespace), data, self.max_frame_size)
        self.published += 1
        if self._observer is not None:
            self._observer.published(event)
        if not self._accepted:
            return 0
        self._batch.append(frame)
        self._batch_bytes += len(frame)
        sent = len(self._accepted)
        if self._sharing:
            picked = self._sharing.targets()
            for member in picked:
                self._picks.setdefault(member, []).append(frame)
            sent += len(picked) - len(self._sharing)
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        return sent

    # -- output ------------------------------------------------------------------

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, count = self._batch, len(self._batch)
        if not batch:
            return
        everything = batch[0] if count == 1 else b"".join(batch)
        picks, self._picks = self._picks, {}
        self._batch = []
        self._batch_bytes = 0
        sharing = self._sharing
        for link in list(self._accepted):
            transport = link.transport
            if transport is None or link.closed or transport.is_closing():
                continue
            data = everything
            if link in sharing:
                mine = picks.get(link)
                if not mine:
                    continue
                data, count = b"".join(mine), len(mine)
            else:
                count = len(batch)
            sub: _Subscription = link.context
            if transport.get_write_buffer_size() + len(data) > self.max_buffer:
                sub.dropped += count
                self.dropped += count
                if not sub.dropping:
                    sub.dropping = True
                    log.warning(
                        "subscriber at %s is too slow: dropping events beyond %d unsent bytes",
                        link.peer,
                        self.max_buffer,
                    )
                continue
            if sub.dropping:
                sub.dropping = False
                log.warning(
                    "subscriber at %s caught up; %d event(s) were dropped for it so far",
                    link.peer,
                    sub.dropped,
                )
            transport.write(data)

    # -- lifecycle ---------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._flush()
        if self._server is not None:
            self._server.close()
        for link in list(self._accepted):
            link.close()

    async def _unbind(self) -> None:
        self._batch.clear()
        self._picks.clear()
        self._batch_bytes = 0
        await super()._unbind()

    # -- links -------------------------------------------------------------------

    def _on_link_open(self, link: Link) -> None:
        link.context = _Subscription()
        super()._on_link_open(link)
        self._change.set()
        log.debug("subscriber connected from %s", link.peer)

    def _on_link_closed(self, link: Link, exc: Exception | None) -> None:
        self._sharing.leave(link)
        self._picks.pop(link, None)
        super()._on_link_closed(link, exc)
        self._change.set()
        log.debug("subscriber at %s left (%s)", link.peer, exc or "closed")

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        # A grouped subscriber names itself; anything else inbound is ignored.
        member = read_member(args)
        if member is None:
            log.debug("ignored a frame from subscriber %s", link.peer)
            return
        node_id, group = member
        if link in self._accepted:
            self._sharing.join(link, group, node_id)
            self._change.set()
            log.debug("subscriber at %s (node %s) joined group %r", link.peer, node_id, group)

    def _node_removed(self, node: Node) -> None:
        # Discovery marked the node gone: its group's events go to the others now.
        for link in self._sharing.of_node(node.id):
            self._sharing.leave(link)
            log.info("group member %s at %s is gone: no more events for it", node.id, link.peer)
        super()._node_removed(node)
