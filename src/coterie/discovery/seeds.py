"""Seeds: host names or addresses whose A records get unicast hellos.

Design: a seed is a name (a Kubernetes headless Service, a DNS round robin,
a host name) or an IPv4 address. :func:`resolve_seed` turns one into its
addresses without blocking the event loop (``loop.getaddrinfo``, so the
system resolver and its ``/etc/resolv.conf`` and ``/etc/hosts`` answer, as
they do for every other program on the host), and tells an empty answer
(the name has no address now: drop its nodes) from a failed lookup (the
resolver is unreachable: keep the last answer). :class:`SeedSet` keeps the
last good answer per seed; the discovery service re-resolves on a timer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable

__all__ = ["SeedSet", "resolve_seed"]

log = logging.getLogger("coterie.discovery")

#: getaddrinfo errors that mean "this name has no IPv4 address", not "lookup failed".
_EMPTY_ANSWERS = frozenset(
    code
    for code in (
        getattr(socket, "EAI_NONAME", None),
        getattr(socket, "EAI_NODATA", None),
        getattr(socket, "EAI_ADDRFAMILY", None),
    )
    if code is not None
)


def _ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


async def resolve_seed(seed: str, port: int, timeout: float) -> tuple[str, ...] | None:
    """The IPv4 addresses of one seed, sorted.

    Returns:
        The addresses; ``()`` when the name has none (NXDOMAIN, no A
        record); ``None`` when the lookup failed or took longer than
        ``timeout`` seconds.
    """
    literal = _ipv4(seed)
    if literal is not None:
        return (literal,)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(
                seed, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
            )
    except socket.gaierror as exc:
        if exc.errno in _EMPTY_ANSWERS:
            return ()
        log.debug("seed %s: lookup failed: %s", seed, exc)
        return None
    except (OSError, TimeoutError) as exc:
        log.debug("seed %s: lookup failed: %s", seed, exc or type(exc).__name__)
        return None
    found = {str(info[4][0]) for info in infos}
    return tuple(sorted(found, key=ipaddress.IPv4Address))


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

    def update(self, seed: str, answer: tuple[str, ...] | None) -> None:
        """Record one lookup: a new answer, or ``None`` for a failure (kept as was)."""
        if answer is None:
            if seed not in self._failing:
                self._failing.add(seed)
                log.warning(
                    "seed %s: lookup failed; keeping its last addresses (%s)",
                    seed,
                    ", ".join(self.answers.get(seed, ())) or "none",
                )
            return
        if seed in self._failing:
            self._failing.discard(seed)
            log.warning("seed %s resolves again", seed)
        self.answers[seed] = answer

    async def refresh(self, port: int, timeout: float) -> tuple[frozenset[str], frozenset[str]]:
        """Resolve every seed at once.

        Returns:
            The addresses added and the addresses removed.
        """
        before = self.members
        answers = await asyncio.gather(*(resolve_seed(s, port, timeout) for s in self.seeds))
        for seed, answer in zip(self.seeds, answers, strict=True):
            self.update(seed, answer)
        after = self.members
        return after - before, before - after
