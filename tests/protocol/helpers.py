"""Helpers of the router tests: advertisements, requests, and what outcomes carry."""

from __future__ import annotations

from typing import Any

from coterie.protocol.routing import Fail, Outcome, Request, Resolve, Router, Send

#: The advertisement of a peer that answers every request type.
ANY: dict[str, Any] = {"name": "any"}


def adv(name: str | None, *types: str, subset: str | None = None) -> dict[str, Any]:
    """An advertisement: ``name`` (none when ``None``), ``respondsTo`` ``types``, ``subset``."""
    out: dict[str, Any] = {} if name is None else {"name": name}
    if types:
        out["respondsTo"] = list(types)
    if subset is not None:
        out["subset"] = subset
    return out


def req(n: int, type_: str = "t", **kwargs: Any) -> Request:
    """Request ``rN`` of type ``type_`` with the frame ``frameN``."""
    return Request(f"r{n}", f"frame{n}".encode(), type_, **kwargs)


def sends(outcomes: list[Outcome]) -> list[tuple[str, bytes]]:
    """``(peer, frame)`` of every :class:`Send` in ``outcomes``."""
    return [(o.peer, o.frame) for o in outcomes if isinstance(o, Send)]


def answers(outcomes: list[Outcome]) -> list[Resolve | Fail]:
    """The :class:`Resolve` and :class:`Fail` outcomes."""
    return [o for o in outcomes if isinstance(o, Resolve | Fail)]


def ok(request_id: str, value: Any = "v") -> list[Any]:
    """A successful reply packet to ``request_id``."""
    return [None, value, request_id]


def place(router: Router, n: int, now: float, type_: str = "t") -> str:
    """Submit request ``n`` and return the peer it was sent to."""
    ((peer, _),) = sends(router.submit(req(n, type_), now))
    return peer
