"""The one token bucket: a burst at once, then a steady rate (sans-I/O).

Design: two things a hostile peer could make this side do without end are
bounded by the same rule: fast-contact replies to newcomers
(:class:`~coterie.protocol.nodes.ReplyBudget`, per process) and log lines
(``coterie._logbudget.LogBudget``, per logger use). A :class:`TokenBucket`
holds up to ``burst`` tokens, refills at ``rate`` a second, and each
:meth:`~TokenBucket.take` spends one or is refused. Time is an argument.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """At most ``burst`` takes at once, then ``rate`` a second (time by argument).

    Args:
        rate: Tokens a second in the long run.
        burst: Tokens that may be taken back to back (the bucket starts full).

    Raises:
        ValueError: Unless ``rate > 0`` and ``burst >= 1``.
    """

    __slots__ = ("_at", "_tokens", "burst", "rate", "refused")

    def __init__(self, rate: float, burst: int) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(
                f"a token bucket needs rate > 0 and burst >= 1, got rate={rate!r}, burst={burst!r}"
            )
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None
        #: Takes refused for want of a token, in all.
        self.refused = 0

    def take(self, now: float) -> bool:
        """Spend one token at ``now`` (seconds, monotonic) if there is one."""
        if self._at is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False
