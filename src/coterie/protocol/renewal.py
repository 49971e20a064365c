"""When a certificate is renewed, and how close one is to its end (sans-I/O).

Two rules, with time as an argument (POSIX seconds, as certificates count
it: ``not_valid_after`` is a wall-clock date, not a loop time):

- **Renewal.** A certificate a component makes for itself (one rooted in
  ``COTERIE_LINK_SECRET``, :meth:`coterie.tls.TLS.from_secret`) is replaced
  once :data:`RENEW_AT` of its lifetime has passed, counted from when it was
  made: two thirds, as cert-manager does, so a certificate always has a
  third of its life left when a handshake presents it. :mod:`coterie.tls`
  asks :func:`renewal_due` before each new handshake; nothing runs on a
  timer, and a suspended machine that wakes up past the point renews at its
  first handshake.
- **Validity.** :func:`validity` says whether a certificate is not yet
  valid, valid, near its end or expired. Near its end is less than
  :data:`WARN_BEFORE` (30 days) left, or less than the last third of its
  lifetime for one that lives less than 90 days: the point where it should
  already have been renewed. ``coterie doctor`` warns of it.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["RENEW_AT", "WARN_BEFORE", "Validity", "renewal_due", "renewal_time", "validity"]

#: The share of its lifetime after which a component's own certificate is renewed.
RENEW_AT = 2 / 3

#: Seconds before its end from which a long-lived certificate is near it (30 days).
WARN_BEFORE = 30 * 86_400.0

#: What :func:`validity` says of a certificate at a given time.
Validity = Literal["not yet valid", "valid", "near expiry", "expired"]


def renewal_time(issued: float, expires: float) -> float:
    """When a certificate made at ``issued`` that ends at ``expires`` is renewed."""
    return issued + (expires - issued) * RENEW_AT


def renewal_due(now: float, issued: float, expires: float) -> bool:
    """Whether a certificate made at ``issued``, ending at ``expires``, is renewed at ``now``."""
    return now >= renewal_time(issued, expires)


def validity(now: float, not_before: float, not_after: float) -> Validity:
    """How a certificate valid from ``not_before`` to ``not_after`` stands at ``now``.

    Near expiry: less than :data:`WARN_BEFORE` left, or less than the share
    of its lifetime past :data:`RENEW_AT` when that is shorter.
    """
    if now < not_before:
        return "not yet valid"
    if now >= not_after:
        return "expired"
    margin = min(WARN_BEFORE, (not_after - not_before) * (1 - RENEW_AT))
    return "near expiry" if not_after - now < margin else "valid"
