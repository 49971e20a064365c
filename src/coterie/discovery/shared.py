"""What the components of one event loop share, by key: the one registry of the process.

Design: discovery is paid per process, not per component. Components of one
event loop whose settings agree share one hub (one socket, one node table),
one fast-contact budget, one etcd registry (one lease, one watch per
prefix) and one unicast socket. Each of these is an entry of a
:class:`PerLoop` registry: entries belong to the running event loop (a
closed loop takes its entries with it: loops are held weakly), and the
first component to ask for a key makes it while later ones wait for it to
be ready (:meth:`PerLoop.join`). The last user removes its entry with
:meth:`PerLoop.discard`, which leaves a newer entry under the same key alone.
A ready entry holds no future (a future would hold its loop, and so keep the
weakly held loop alive).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

V = TypeVar("V")


class _Entry(Generic[V]):
    __slots__ = ("ready", "value")

    def __init__(self, value: V, ready: asyncio.Future[None] | None = None) -> None:
        self.value = value
        #: Set while the entry starts; ``None`` once it is ready.
        self.ready = ready


class PerLoop(Generic[V]):
    """Entries shared by the components of one event loop, by key.

    Every method acts on the running event loop's entries.
    """

    __slots__ = ("_loops", "what")

    def __init__(self, what: str) -> None:
        #: What the entries are, for messages.
        self.what = what
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, _Entry[V]]
        ] = weakref.WeakKeyDictionary()

    def _entries(self) -> dict[Hashable, _Entry[V]]:
        loop = asyncio.get_running_loop()
        entries = self._loops.get(loop)
        if entries is None:
            entries = self._loops[loop] = {}
        return entries

    def get(self, key: Hashable) -> V | None:
        """The entry at ``key`` (ready or not), or ``None``."""
        entry = self._entries().get(key)
        return entry.value if entry is not None else None

    def setdefault(self, key: Hashable, make: Callable[[], V]) -> V:
        """The entry at ``key``, made now by ``make()`` if there is none (ready at once)."""
        entries = self._entries()
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry(make())
        return entry.value

    async def join(
        self, key: Hashable, make: Callable[[], V], start: Callable[[V], Awaitable[None]]
    ) -> V:
        """The entry at ``key`` once started; the first caller makes and starts it.

        Later callers wait until it is started. A start that fails removes
        the entry and raises to every caller waiting on it; the next call
        makes a new one.
        """
        entries = self._entries()
        entry = entries.get(key)
        if entry is not None:
            if entry.ready is not None:
                await asyncio.shield(entry.ready)
            return entry.value
        value = make()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = entries[key] = _Entry(value, ready)
        try:
            await start(value)
        except BaseException as exc:
            self.discard(key, value)
            ready.set_exception(exc)
            ready.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            entry.ready = None
        ready.set_result(None)
        return value

    def discard(self, key: Hashable, value: V) -> None:
        """Remove the entry at ``key`` if it is still ``value``."""
        entries = self._entries()
        entry = entries.get(key)
        if entry is not None and entry.value is value:
            del entries[key]

    def __len__(self) -> int:
        """How many entries the running loop holds."""
        return len(self._entries())
