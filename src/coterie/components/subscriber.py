"""Subscriber: receives events from every paired publisher.

Design: discovery tells the subscriber which publishers pair with it
(``pub-emitter``, same key and namespace); a
:class:`~coterie.components.connecting.ConnectingComponent` keeps one link to each and
re-opens it while the publisher lives. Every frame is ``[topic, data]``.
Topics are filtered on this side as cote does: a topic is accepted when it
matches ``message::[namespace::]<pattern>`` for one of the advertised
``subscribesTo`` patterns (default ``["*"]``), where ``*`` stands for one or
more characters, ``::`` included (axon's rule,
:func:`coterie.protocol.patterns.topic_matches`). The event name is the topic
without ``message::`` and the namespace.

Handlers (``on``):

- ``s.on("update", handler)`` calls ``handler(data)`` for each ``update``
  event (cote's listeners also get just the data).
- A name with ``*`` is a pattern with EventEmitter2's meaning, as cote's
  ``subscriber.on`` (:func:`coterie.protocol.patterns.matches`): ``"*"``
  takes every event without ``::``, ``"user::*"`` that family, ``"**"``
  everything; ``"user.*"`` (a ``*`` inside a segment) takes ``user.`` and
  one or more characters, where EventEmitter2 reads a literal ``*``. Such
  a handler is called ``handler(event, data)``, since it needs the name.
- A handler may be a plain function or a coroutine function. Plain handlers
  run inside the read callback, in arrival order; coroutine handlers each get
  a task, so they may finish out of order; closing the subscriber cancels
  those still running after a second. A handler's exception is logged and
  does not affect other handlers or the link.

Differences from cote, on purpose (docs/cote-differences.md): a pattern
handler gets the event name first; an event matching several
``subscribesTo`` patterns is delivered once (cote delivers it once per
matching pattern); the event name is always the full name (cote renames an
event matched by a partial pattern such as ``user*`` to the part the ``*``
matched); an event no handler takes is dropped silently (cote logs it).

Beyond cote: ``Subscriber(group="mailer")`` shares events with the other
members of its group: it advertises ``group`` and names itself on each
publisher link (:mod:`coterie.protocol.sharing`), and a coterie publisher
sends each event to one member of each group. A Node cote publisher knows no
groups and sends it every event.

Subscribers also report their publisher links to monitors (see
:mod:`coterie.components.monitorable`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from coterie.components.connecting import ConnectingComponent
from coterie.observe import SubscriberStats
from coterie.protocol.patterns import is_pattern, matches, topic_regex
from coterie.protocol.sharing import check_group, encode_member
from coterie.transport.link import Link
from coterie.transport.peers import Peer

__all__ = ["EventHandler", "Subscriber"]

log = logging.getLogger("coterie.subscriber")

#: ``handler(data)`` for a plain name, ``handler(event, data)`` for a pattern.
EventHandler = Callable[..., Any]
H = TypeVar("H", bound=EventHandler)

_PREFIX = "message::"


def _check_names(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"{what} must be a list of event names, got {value!r}")
    for name in value:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what} must hold non-empty strings, got {name!r}")
    return list(value)


class Subscriber(ConnectingComponent):
    """Receives published events.

    Args:
        name: Name shown to peers.
        subscribes_to: Event names or ``*`` patterns to accept, advertised as
            ``subscribesTo``; everything (``["*"]``) by default.
        group: Share events with the other subscribers of this group: a
            coterie publisher sends each event to one member of each group
            (round robin). Advertised as ``group``; at most 64 characters.
        status_interval: Seconds between status reports to monitors.
        **kwargs: See :class:`~coterie.components.base.Component`
            (``namespace``, ``key``, ``discovery``, ...).
    """

    role = "sub-emitter"
    opposite = "pub-emitter"
    peer_label = "publisher"

    def __init__(
        self,
        name: str | None = None,
        *,
        subscribes_to: list[str] | None = None,
        group: str | None = None,
        **kwargs: Any,
    ) -> None:
        extra = dict(kwargs.pop("advertisement", None) or {})
        self.group = check_group(group)
        if self.group is not None:
            extra["group"] = self.group
        if subscribes_to is not None:
            extra["subscribesTo"] = _check_names(subscribes_to, "subscribes_to")
        elif "subscribesTo" in extra:
            extra["subscribesTo"] = _check_names(extra["subscribesTo"], "subscribesTo")
        else:
            extra["subscribesTo"] = ["*"]
        super().__init__(name, advertisement=extra, **kwargs)
        self.subscribes_to: list[str] = list(self.advertisement["subscribesTo"])
        self._event_prefix = _PREFIX + (f"{self.namespace}::" if self.namespace else "")
        self._filters = [topic_regex(self._event_prefix + p) for p in self.subscribes_to]
        self._handlers: dict[str, list[EventHandler]] = {}
        self._pattern_handlers: list[tuple[str, EventHandler]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Events accepted (matched ``subscribesTo``), whether handled or not.
        self.received = 0

    # -- handlers --------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register a handler for an event name or ``*`` pattern; usable as a decorator.

        ``handler(data)`` for a name, ``handler(event, data)`` for a pattern;
        plain or coroutine functions. Several handlers may share a name.
        """
        if not isinstance(event, str) or not event:
            raise ValueError("event must be a non-empty string")

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"handler for {event!r} is not callable")
            if is_pattern(event):
                self._pattern_handlers.append((event, fn))
            else:
                self._handlers.setdefault(event, []).append(fn)
            return fn

        return register(handler) if handler is not None else register

    def off(self, event: str, handler: EventHandler | None = None) -> None:
        """Remove one handler of ``event``, or all of them."""
        if is_pattern(event):
            self._pattern_handlers = [
                (p, fn)
                for p, fn in self._pattern_handlers
                if not (p == event and (handler is None or fn == handler))
            ]
            return
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            self._handlers.pop(event, None)

    # -- public ----------------------------------------------------------------

    def stats(self) -> SubscriberStats:
        """What this subscriber holds now (see :class:`coterie.observe.SubscriberStats`)."""
        return SubscriberStats(**self._stats_fields(), received=self.received)

    def accepts(self, topic: str) -> bool:
        """Whether a wire topic passes this subscriber's ``subscribesTo`` filter."""
        return any(f.fullmatch(topic) for f in self._filters)

    # -- discovery hooks -----------------------------------------------------------

    def _link_up(self, peer: Peer) -> None:
        if self.group is not None and peer.link is not None:
            peer.link.write(encode_member(self.id, self.group))
        super()._link_up(peer)

    def _status_traffic(self) -> dict[str, dict[str, int]]:
        # Every frame a publisher sends is an event; a link counts its own.
        return {p.id: {"events": p.link.frames} for p in self._links.linked() if p.link}

    async def _shutdown(self) -> None:
        await super()._shutdown()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)

    # -- events ------------------------------------------------------------------

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        if not args or not isinstance(args[0], str):
            log.debug("dropped a frame without a topic from %s", link.peer)
            return
        topic = args[0]
        if not any(f.fullmatch(topic) for f in self._filters):
            return
        self.received += 1
        event = topic[len(self._event_prefix) :]
        if self._observer is not None:
            self._observer.received(event)
        data = args[1] if len(args) > 1 else None
        for handler in self._handlers.get(event, ()):
            self._call(handler, event, (data,))
        for pattern, handler in self._pattern_handlers:
            if matches(pattern, event):
                self._call(handler, event, (event, data))

    def _call(self, handler: EventHandler, event: str, args: tuple[Any, ...]) -> None:
        try:
            result = handler(*args)
        except Exception:
            log.exception("handler for event %r failed", event)
            return
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._finish(event, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _finish(event: str, pending: Any) -> None:
        try:
            await pending
        except Exception:
            log.exception("handler for event %r failed", event)
