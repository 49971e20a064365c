"""Log lines a hostile peer can trigger, rate-limited so a flood is not a flood of lines.

Design: the one token bucket (:class:`coterie.protocol.budget.TokenBucket`)
per :class:`LogBudget`: ``burst`` lines at once, then ``per_second``. A line
over budget is counted, not written; the next line written says how many
like it were left out. Time is ``time.monotonic()`` unless a clock is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from coterie.protocol.budget import TokenBucket

__all__ = ["LogBudget"]


class LogBudget:
    """At most ``burst`` lines at once, then ``per_second`` lines a second.

    Args:
        logger: Where the lines go.
        per_second: Lines a second once the burst is spent.
        burst: Lines that may go out at once.
        clock: Seconds, monotonic; ``time.monotonic`` by default.
    """

    __slots__ = ("_bucket", "_clock", "_logger", "suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_second: float = 1.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._bucket = TokenBucket(per_second, burst)
        self._clock = clock
        #: Lines left out since the last one written.
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """Write the line if the budget allows; returns whether it was written."""
        if not self._logger.isEnabledFor(level):
            return False
        if not self._bucket.take(self._clock()):
            self.suppressed += 1
            return False
        if self.suppressed:
            msg += " (%d more like it left out of the log)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, msg: str, *args: Any) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """:meth:`log` at ERROR."""
        return self.log(logging.ERROR, msg, *args, exc_info=exc_info)
