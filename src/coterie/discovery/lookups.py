"""Seed lookups: host names or addresses whose A records get unicast hellos.

Design: a seed is a name (a Kubernetes headless Service, a DNS round robin,
a host name) or an IPv4 address. :func:`resolve_seed` turns one into its
addresses without blocking the event loop (``loop.getaddrinfo``, so the
system resolver and its ``/etc/resolv.conf`` and ``/etc/hosts`` answer, as
they do for every other program on the host), and tells an empty answer
(the name has no address now: drop its nodes) from a failed lookup (the
resolver is unreachable: keep the last answer). The pure
:class:`~coterie.protocol.seeds.SeedSet` keeps the last good answer per seed
and says who is a member; :func:`refresh` feeds it; the discovery service
re-resolves on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from coterie.protocol.seeds import FAILED, RECOVERED, SeedSet

__all__ = ["SeedSet", "record", "refresh", "resolve_seed"]

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
    import ipaddress  # only with seeds

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
    return tuple(sorted(found, key=socket.inet_aton))  # numeric order, as IPv4Address


async def refresh(
    seeds: SeedSet, port: int, timeout: float
) -> tuple[frozenset[str], frozenset[str]]:
    """Resolve every seed at once and record the answers (logging what changed).

    Returns:
        The member addresses added and the ones removed.
    """
    before = seeds.members
    answers = await asyncio.gather(*(resolve_seed(s, port, timeout) for s in seeds.seeds))
    for seed, answer in zip(seeds.seeds, answers, strict=True):
        record(seeds, seed, answer)
    after = seeds.members
    return after - before, before - after


def record(seeds: SeedSet, seed: str, answer: tuple[str, ...] | None) -> None:
    """Feed one lookup to the seed set; a seed that begins to fail or recovers is logged once."""
    change = seeds.update(seed, answer)
    if change == FAILED:
        log.warning(
            "seed %s: lookup failed; keeping its last addresses (%s)",
            seed,
            ", ".join(seeds.answers.get(seed, ())) or "none",
        )
    elif change == RECOVERED:
        log.warning("seed %s resolves again", seed)
