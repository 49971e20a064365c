"""The seed set: which addresses are members of a seeded mesh (sans-I/O).

Design: with seeds (names or addresses whose A records get unicast hellos),
the seeds define the mesh. :class:`SeedSet` keeps the last good answer per
seed, tells a failed lookup (keep what was known) from an empty answer (the
name has no address now: its nodes leave), and says whose hellos count
(:meth:`SeedSet.admits`). Lookups and their log lines belong to the adapter
(:mod:`coterie.discovery.lookups`), which feeds answers in with
:meth:`SeedSet.update`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FAILED", "RECOVERED", "SeedSet"]

#: :meth:`SeedSet.update` results: a seed's lookups began to fail, or work again.
FAILED = "failed"
RECOVERED = "recovered"


class SeedSet:
    """The addresses the seeds resolve to, by seed, kept across failed lookups.

    Args:
        seeds: The seeds, names or addresses.
        static: Addresses that always belong (the ``unicast`` list).
    """

    def __init__(self, seeds: Iterable[str], static: Iterable[str] = ()) -> None:
        self.seeds = tuple(seeds)
        self.static = frozenset(static)
        self.answers: dict[str, tuple[str, ...]] = {}
        self._failing: set[str] = set()

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the seeds resolved to last time, in seed order."""
        return tuple(dict.fromkeys(a for seed in self.seeds for a in self.answers.get(seed, ())))

    @property
    def members(self) -> frozenset[str]:
        """The addresses whose hellos count: the seeds' and the static ones."""
        return frozenset(self.addresses) | self.static

    def admits(self, source: str, announced: object) -> bool:
        """Whether a hello counts: it comes from a member, or announces one.

        Args:
            source: The datagram's source address.
            announced: The ``address`` its hello announces (a node behind NAT
                announces the seed's address while its datagrams come from
                elsewhere).
        """
        members = self.members
        return source in members or (isinstance(announced, str) and announced in members)

    def update(self, seed: str, answer: tuple[str, ...] | None) -> str | None:
        """Record one lookup: a new answer, or ``None`` for a failure (kept as was).

        Returns:
            :data:`FAILED` when this seed's lookups begin to fail,
            :data:`RECOVERED` when they work again, else ``None``: what is
            worth one log line.
        """
        if answer is None:
            if seed in self._failing:
                return None
            self._failing.add(seed)
            return FAILED
        self.answers[seed] = answer
        if seed in self._failing:
            self._failing.discard(seed)
            return RECOVERED
        return None
