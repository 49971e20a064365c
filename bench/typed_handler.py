"""The bench's typed echo (``"handler": "msgspec"`` in ``bench/worker.py``).

A msgspec ``Struct`` in and out, answering exactly what the plain echo
answers (``{...req, by, pid}`` for the bench's request). Its own module, so
the annotation resolves at registration and only a typed worker imports
msgspec.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec


class Card(msgspec.Struct):
    """The bench's request: the seed's card validation."""

    type: str
    cardno: str


class Echoed(msgspec.Struct):
    """What the echo answers: the request, who answered and its pid."""

    type: str
    cardno: str
    by: str
    pid: int


def typed_echo(name: str, pid: int) -> Callable[[Card], Echoed]:
    """An echo handler typed with msgspec, answering as ``name`` (process ``pid``)."""

    def echo(card: Card) -> Echoed:
        return Echoed(type=card.type, cardno=card.cardno, by=name, pid=pid)

    return echo
