"""Event and topic patterns: which names a ``*`` pattern takes (sans-I/O).

Design: the one home of both pattern rules cote has, as pure functions over
strings (compiled forms are cached, bounded). They differ in cote, so they
differ here:

- **Handler names** (:func:`matches`): cote's components are EventEmitter2
  emitters with ``wildcard: true`` and the delimiter ``::``. A name is split
  into segments at ``::``; a pattern segment ``*`` takes exactly one segment
  (an empty one too), ``**`` takes any number of segments (none too), and
  any other segment must be equal. So ``*`` takes every name without
  ``::``, ``orders::*`` the family ``orders::new``, ``orders::paid``, and
  ``**`` everything. Used by ``Responder.on`` (a request's ``type``), by
  ``Subscriber.on`` (an event name), and by a requester, ``coterie doctor``
  and the gateways when they read a responder's ``respondsTo`` (a
  responder advertising ``**`` serves every type).

  One extension, kept from coterie's first ``Subscriber.on``: a ``*`` inside
  a longer segment (``user.*``) stands for one or more characters of that
  segment. EventEmitter2 reads it as a literal ``*``; an exact name always
  wins over a pattern (:func:`best`), so a literal name still finds its own
  handler.

- **Wire topics** (:func:`topic_matches`): axon's sub-emitter filters a
  publish's topic (``message::[namespace::]event``) against each
  ``subscribesTo`` entry, where ``*`` stands for one or more characters,
  ``::`` included, and everything else is literal.

A name is a *pattern* when it holds a ``*`` (:func:`is_pattern`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "DELIMITER",
    "best",
    "is_pattern",
    "matches",
    "matches_any",
    "specificity",
    "topic_matches",
    "topic_regex",
]

#: EventEmitter2's delimiter in cote: ``orders::new`` has two segments.
DELIMITER = "::"
_ANY_ONE = "*"
_ANY_MANY = "**"
#: Compiled patterns kept at once (advertised lists come from peers: bounded).
_CACHE = 1024


def is_pattern(name: str) -> bool:
    """Whether ``name`` is a pattern (it holds a ``*``) rather than a plain name."""
    return "*" in name


@lru_cache(maxsize=_CACHE)
def _segments(pattern: str) -> tuple[str | re.Pattern[str], ...]:
    """A handler pattern's segments: ``*``, ``**``, a literal, or a compiled in-segment glob."""
    out: list[str | re.Pattern[str]] = []
    for segment in pattern.split(DELIMITER):
        if segment in (_ANY_ONE, _ANY_MANY) or "*" not in segment:
            out.append(segment)
        else:
            out.append(re.compile(re.escape(segment).replace(r"\*", ".+")))
    return tuple(out)


def _match(pattern: tuple[str | re.Pattern[str], ...], names: list[str]) -> bool:
    # One pass per pattern segment over the set of name positions reached so
    # far: time grows with segments x names, whatever the number of ``**``.
    reached = [True] + [False] * len(names)
    for segment in pattern:
        if segment == _ANY_MANY:
            for i in range(1, len(reached)):  # zero or more: every position after one reached
                reached[i] = reached[i] or reached[i - 1]
            continue
        step = [False] * len(reached)
        for i, name in enumerate(names):
            if reached[i] and (
                segment == _ANY_ONE
                or (segment == name if isinstance(segment, str) else segment.fullmatch(name))
            ):
                step[i + 1] = True
        reached = step
    return reached[-1]


def matches(pattern: str, name: str) -> bool:
    """Whether the handler pattern ``pattern`` takes the name ``name`` (EventEmitter2's rule).

    A pattern without ``*`` takes only itself.
    """
    if "*" not in pattern:
        return pattern == name
    return _match(_segments(pattern), name.split(DELIMITER))


def matches_any(names: Iterable[str], name: str) -> bool:
    """Whether ``name`` is one of ``names`` or taken by one of its patterns."""
    return any(n == name or ("*" in n and matches(n, name)) for n in names)


def specificity(pattern: str) -> tuple[int, int, int]:
    """How general a pattern is; lower sorts first (more specific).

    ``(number of **, number of *, -number of segments)``: ``orders::*`` is
    more specific than ``**``, and ``*::new::*`` than ``*``.
    """
    segments = pattern.split(DELIMITER)
    return (segments.count(_ANY_MANY), segments.count(_ANY_ONE), -len(segments))


def best(patterns: Iterable[str], name: str) -> str | None:
    """The pattern that takes ``name``: the most specific, the first of equals; or ``None``.

    The caller looks up an exact name first; this chooses among patterns.
    """
    found: str | None = None
    for pattern in patterns:
        if matches(pattern, name) and (found is None or specificity(pattern) < specificity(found)):
            found = pattern
    return found


@lru_cache(maxsize=_CACHE)
def topic_regex(pattern: str) -> re.Pattern[str]:
    """axon's topic pattern compiled: literal text where ``*`` is one or more characters."""
    return re.compile(re.escape(pattern).replace(r"\*", "(.+)"))


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether the wire topic ``topic`` passes the ``subscribesTo`` filter ``pattern``."""
    return topic_regex(pattern).fullmatch(topic) is not None
