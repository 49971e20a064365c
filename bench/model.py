"""What scenarios share: the run parameters, the context, the result rows.

Design: a scenario is ``async def run(ctx) -> list[Row]``. It runs each
measurement for every implementation in ``ctx.impls``, alternating their
order from round to round (coterie first, then cote first, ...), so slow drift
of the machine hits both sides alike. A :class:`Row` keeps every sample and
reports the median; the reference is Node cote, nginx for the HTTP rows, or
the bare uvloop echo (``bench/echo.py``) for the rows that compare coterie
with the Python ceiling.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.proc import Impl


@dataclass
class Params:
    """Sizes and durations of one bench run."""

    smoke: bool
    rounds: int
    rr_rounds: int
    rr_n: dict[int, int]
    handler_rounds: int
    peers_n: int
    peers_seq_n: int
    warmup: int
    contact_rounds: int
    contact_settle: float
    failover_n: int
    failover_concurrency: int
    failover_kill_after: float
    failover_bound_ms: int
    pubsub_n: int
    rss_idle: float
    http_seconds: int
    http_connections: int

    @classmethod
    def full(cls) -> Params:
        """A full run: a few minutes."""
        return cls(
            smoke=False,
            rounds=3,
            rr_rounds=5,
            rr_n={1: 4000, 10: 20000, 100: 60000},
            handler_rounds=20,
            peers_n=20000,
            peers_seq_n=2000,
            warmup=3000,
            contact_rounds=3,
            contact_settle=1.0,
            failover_n=60000,
            failover_concurrency=100,
            failover_kill_after=0.25,
            failover_bound_ms=2000,
            pubsub_n=100000,
            rss_idle=1.5,
            http_seconds=5,
            http_connections=50,
        )

    @classmethod
    def tiny(cls) -> Params:
        """The smoke run: every scenario, tiny, for CI."""
        return cls(
            smoke=True,
            rounds=1,
            rr_rounds=1,
            rr_n={1: 200, 10: 300, 100: 400},
            handler_rounds=2,
            peers_n=300,
            peers_seq_n=100,
            warmup=100,
            contact_rounds=1,
            contact_settle=0.2,
            failover_n=1500,
            failover_concurrency=20,
            failover_kill_after=0.05,
            failover_bound_ms=1000,
            pubsub_n=500,
            rss_idle=0.2,
            http_seconds=1,
            http_connections=10,
        )

    def as_dict(self) -> dict[str, Any]:
        """The parameters, for the report."""
        return {k: v for k, v in self.__dict__.items() if k != "smoke"}


@dataclass
class Row:
    """One line of the result table.

    Attributes:
        key: Stable identifier (``rr_c100``).
        label: What is measured, for people.
        unit: Unit of the values.
        higher_is_better: Direction of goodness.
        reference: ``"cote"``, ``"nginx"`` or ``"echo"``.
        ours: coterie's samples.
        theirs: The reference's samples.
        target: Text of the target, if any.
        check: Decides whether the target is met from (ours, theirs); None
            when it cannot tell (a relative target without a reference).
        note: Anything the reader needs to interpret the row.
        aggregate: ``"median"``, ``"sum"``, ``"max"`` or ``"min"`` over samples.
        mark: The target as a "times better" factor, marked on the chart.
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    reference: str = "cote"
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    target: str = ""
    check: Callable[[float, float | None], bool | None] | None = None
    note: str = ""
    aggregate: str = "median"
    mark: float | None = None

    def _agg(self, samples: list[float]) -> float | None:
        if not samples:
            return None
        if self.aggregate == "sum":
            return float(sum(samples))
        if self.aggregate == "max":
            return float(max(samples))
        if self.aggregate == "min":
            return float(min(samples))
        return float(statistics.median(samples))

    @property
    def value(self) -> float | None:
        """coterie's aggregated value."""
        return self._agg(self.ours)

    @property
    def ref_value(self) -> float | None:
        """The reference's aggregated value."""
        return self._agg(self.theirs)

    @property
    def ratio(self) -> float | None:
        """coterie / reference."""
        ours, theirs = self.value, self.ref_value
        if ours is None or theirs is None or theirs == 0:
            return None
        return ours / theirs

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None without a target or data."""
        if self.check is None or self.value is None:
            return None
        verdict = self.check(self.value, self.ref_value)
        return None if verdict is None else bool(verdict)

    def add(self, impl_name: str, value: float) -> None:
        """Record one sample for ``impl_name``."""
        (self.ours if impl_name == "coterie" else self.theirs).append(value)

    def as_dict(self) -> dict[str, Any]:
        """Everything about the row, for JSON output."""
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "reference": self.reference,
            "higher_is_better": self.higher_is_better,
            "coterie": self.value,
            "reference_value": self.ref_value,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "samples": {"coterie": self.ours, self.reference: self.theirs},
        }


@dataclass
class Context:
    """What every scenario gets."""

    params: Params
    impls: list[Impl]
    notes: list[str] = field(default_factory=list)
    verbose: bool = True

    def order(self, round_no: int) -> Iterator[Impl]:
        """The implementations in this round's order (alternating)."""
        return iter(self.impls if round_no % 2 == 0 else list(reversed(self.impls)))

    def log(self, message: str) -> None:
        """Progress line on stderr."""
        if self.verbose:
            import sys

            print(f"  {message}", file=sys.stderr, flush=True)

    def impl(self, name: str) -> Impl | None:
        """The implementation called ``name``, if it runs."""
        return next((i for i in self.impls if i.name == name), None)
