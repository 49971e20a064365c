"""What routing trusts about a linked coterie responder comes from its link (sans-I/O).

Discovery is plaintext UDP unless a key is set, and a hello can be forged
with any source address: a hello that reuses a linked responder's id could
tell requesters it serves nothing, and they would stall until its real hello
came back. So, while a requester holds a live link to a *coterie* responder
(one that answers pings), the advertisement fields routing decides on
(:data:`ROUTED`: the types it serves, its subset, namespace and key) are
bound to that link:

- the responder sends them on the link (``[ADVERT, {fields}]``) when the
  link first pings it and whenever its handlers change; only the peer at the
  other end of the link can send that frame;
- a hello from discovery that would change them is ignored and counted
  (:attr:`Bindings.forged`); one that changes nothing else passes;
- once the link is gone, discovery is trusted again, as in cote.

Node cote responders do not answer pings and never send the frame: for
them, discovery's advertisement is all there is, as in cote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coterie.protocol.framing import encode_frame

__all__ = ["ADVERT", "ROUTED", "Bindings", "advert_frame", "is_advert", "routed"]

#: The first argument of an advertisement frame ``[ADVERT, {fields}]``.
ADVERT = "coterie:advert"
#: Advertisement fields routing decides on.
ROUTED = ("respondsTo", "subset", "namespace", "key")
#: Most request types a link's advertisement may name.
MAX_TYPES = 10_000


def routed(advertisement: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``advertisement`` that routing decides on."""
    return {field: advertisement[field] for field in ROUTED if field in advertisement}


def advert_frame(advertisement: Mapping[str, Any]) -> bytes:
    """The frame a responder sends on a link: its routed fields."""
    return encode_frame((ADVERT, routed(advertisement)))


def is_advert(args: list[Any]) -> bool:
    """Whether a received frame is an advertisement frame."""
    return len(args) == 2 and args[0] == ADVERT


def _valid(fields: Any) -> dict[str, Any] | None:
    if not isinstance(fields, dict):
        return None
    types = fields.get("respondsTo")
    if types is not None and not (
        isinstance(types, list)
        and len(types) <= MAX_TYPES
        and all(isinstance(t, str) for t in types)
    ):
        return None
    for field in ("subset", "namespace", "key"):
        value = fields.get(field)
        if value is not None and not isinstance(value, str):
            return None
    return {field: fields[field] for field in ROUTED if field in fields}


class Bindings:
    """The routed fields of each linked coterie responder (see the module doc)."""

    __slots__ = ("_bound", "forged")

    def __init__(self) -> None:
        self._bound: dict[str, dict[str, Any]] = {}
        #: Hellos from discovery ignored because they would change a bound peer.
        self.forged = 0

    def bind(self, peer: str, advertisement: Mapping[str, Any]) -> None:
        """``peer``'s link came up: its routed fields are bound to it (until its frame says)."""
        self._bound[peer] = dict(advertisement)

    def unbind(self, peer: str) -> None:
        """``peer``'s link is gone: discovery speaks for it again."""
        self._bound.pop(peer, None)

    def bound(self, peer: str) -> dict[str, Any] | None:
        """The advertisement routing uses for ``peer`` while it is bound."""
        return self._bound.get(peer)

    def from_discovery(self, peer: str, advertisement: Mapping[str, Any]) -> bool:
        """A hello for ``peer`` changed its advertisement: may routing take it?

        ``False`` (and counted) when ``peer`` is bound and the hello would
        change a routed field.
        """
        bound = self._bound.get(peer)
        if bound is None or routed(bound) == routed(advertisement):
            return True
        self.forged += 1
        return False

    def from_link(self, peer: str, fields: Any) -> dict[str, Any] | None:
        """``peer`` sent its routed fields on its link: the advertisement to route with.

        ``None`` when ``peer`` is not bound or the fields are malformed.
        """
        bound = self._bound.get(peer)
        checked = _valid(fields)
        if bound is None or checked is None:
            return None
        advertisement = {k: v for k, v in bound.items() if k not in ROUTED}
        advertisement.update(checked)
        self._bound[peer] = advertisement
        return advertisement
