"""One event-loop timer, re-armed in place: the adapters' only timer helper.

Design: the protocol answers "when is the next wake-up" (a time, or ``None``)
and the adapters keep one :class:`Alarm` per kind of wake-up. Two ways to
arm it cover every timer in coterie:

- :meth:`Alarm.keep` for deadline-driven wake-ups (the requester's router
  and liveness): the timer only ever moves *earlier* until it fires, so a
  request that brings nothing forward costs one comparison, not a
  cancel-and-reschedule. Firing early is harmless: the callback finds
  nothing due and asks again.
- :meth:`Alarm.after` for periodic work (hellos, node checks, status
  reports, idle-link sweeps): arm it ``delay`` seconds from now, replacing
  whatever was armed; the callback re-arms it for the next period.

:meth:`Alarm.cancel` disarms it. The callback runs on the event loop, with
the alarm already disarmed, so it may re-arm the alarm itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Alarm"]


class Alarm:
    """One timer on the running event loop, armed at most once at a time.

    Args:
        callback: Called with no argument when the alarm fires.
    """

    __slots__ = ("_callback", "_handle", "at")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        #: Loop time it fires at (or last fired at).
        self.at = 0.0

    @property
    def armed(self) -> bool:
        """Whether it will fire."""
        return self._handle is not None

    def covers(self, due: float) -> bool:
        """Whether it is armed to fire at or before ``due``."""
        return self._handle is not None and self.at <= due

    def keep(self, due: float | None) -> None:
        """Make sure it fires at or before ``due`` (loop time; ``None``: nothing is due)."""
        if due is None or self.covers(due):
            return
        self.set(due)

    def set(self, due: float) -> None:
        """Fire at ``due`` (loop time), replacing whatever was armed."""
        if self._handle is not None:
            self._handle.cancel()
        self.at = due
        self._handle = asyncio.get_running_loop().call_at(due, self._fire)

    def after(self, delay: float) -> None:
        """Fire ``delay`` seconds from now, replacing whatever was armed."""
        self.set(asyncio.get_running_loop().time() + delay)

    def cancel(self) -> None:
        """Disarm it (nothing happens if it is not armed)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()
