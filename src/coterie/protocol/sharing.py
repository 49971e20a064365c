"""Events shared by a group: which subscribers get each event (sans-I/O).

Design: a subscriber made with ``group="mailer"`` advertises ``group`` in
its discovery data and, as the first frame on each link it opens to a
publisher, names itself: ``["coterie:member", {"id": ..., "group": ...}]``
(:func:`encode_member`, read back by :func:`read_member`). A coterie
publisher then keeps a :class:`Sharing`: every link that named no group
(plain coterie subscribers, Node cote subscribers) gets every event, and
each group gets each event on exactly one of its live members, chosen
round robin (:meth:`Sharing.targets`). A member is dropped from the
rotation as soon as its link closes or discovery marks its node gone
(:meth:`Sharing.leave`), so nothing is sent to a node known to be dead.

A Node cote publisher reads no frame from its subscribers and knows no
groups: it sends every event to every member.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from coterie.protocol.framing import encode_frame

__all__ = [
    "MAX_GROUP_LENGTH",
    "MEMBER_TOPIC",
    "Sharing",
    "check_group",
    "encode_member",
    "read_member",
]

#: The longest group name, in characters.
MAX_GROUP_LENGTH = 64
#: The topic of the frame a grouped subscriber sends first on each link.
MEMBER_TOPIC = "coterie:member"

M = TypeVar("M", bound=Hashable)


def check_group(group: Any) -> str | None:
    """``group`` if it is a valid group name (or ``None``), else a clear error.

    Raises:
        TypeError: ``group`` is not a string.
        ValueError: ``group`` is empty or longer than :data:`MAX_GROUP_LENGTH`.
    """
    if group is None:
        return None
    if not isinstance(group, str):
        raise TypeError(f"group must be a string such as 'mailer', got {group!r}")
    if not group or len(group) > MAX_GROUP_LENGTH:
        raise ValueError(
            f"group must be 1 to {MAX_GROUP_LENGTH} characters, "
            f"got {len(group)}: use a shorter name"
        )
    return group


def encode_member(node_id: str, group: str) -> bytes:
    """The frame a grouped subscriber sends first: ``[MEMBER_TOPIC, {id, group}]``."""
    return encode_frame((MEMBER_TOPIC, {"id": node_id, "group": group}))


def read_member(args: list[Any]) -> tuple[str, str] | None:
    """``(node id, group)`` from a member frame, or ``None`` for any other frame."""
    if len(args) != 2 or args[0] != MEMBER_TOPIC or not isinstance(args[1], dict):
        return None
    node_id, group = args[1].get("id"), args[1].get("group")
    if not isinstance(node_id, str) or not isinstance(group, str):
        return None
    try:
        check_group(group)
    except (TypeError, ValueError):
        return None
    return node_id, group


class _Ring(Generic[M]):
    """One group's live members and whose turn is next."""

    __slots__ = ("members", "turn")

    def __init__(self) -> None:
        self.members: list[M] = []
        self.turn = 0

    def next(self) -> M:
        member = self.members[self.turn % len(self.members)]
        self.turn = (self.turn + 1) % len(self.members)
        return member


class Sharing(Generic[M]):
    """The groups of a publisher's subscribers and whose turn each one is.

    Members are whatever the adapter uses for a subscriber (its link); a
    member not in any group is not known here and gets every event.
    """

    __slots__ = ("_groups", "_member_of", "_node_of")

    def __init__(self) -> None:
        self._groups: dict[str, _Ring[M]] = {}
        self._member_of: dict[M, str] = {}
        self._node_of: dict[M, str] = {}

    def __bool__(self) -> bool:
        return bool(self._member_of)

    def __len__(self) -> int:
        return len(self._member_of)

    def __contains__(self, member: object) -> bool:
        return member in self._member_of

    def join(self, member: M, group: str, node_id: str) -> None:
        """``member`` (of node ``node_id``) takes its turns in ``group`` from now on."""
        self.leave(member)
        self._member_of[member] = group
        self._node_of[member] = node_id
        self._groups.setdefault(group, _Ring()).members.append(member)

    def leave(self, member: M) -> bool:
        """``member`` gets nothing more (its link closed, its node is gone); whether it was in."""
        group = self._member_of.pop(member, None)
        if group is None:
            return False
        del self._node_of[member]
        ring = self._groups[group]
        at = ring.members.index(member)
        ring.members.pop(at)
        if not ring.members:
            del self._groups[group]
        elif at < ring.turn:
            ring.turn -= 1
        return True

    def of_node(self, node_id: str) -> list[M]:
        """The members that named ``node_id`` as theirs."""
        return [m for m, n in self._node_of.items() if n == node_id]

    def targets(self) -> list[M]:
        """One member of each group for the next event, each group's turn moved on."""
        return [ring.next() for ring in self._groups.values()]

    def sizes(self) -> dict[str, int]:
        """How many live members each group has."""
        return {group: len(ring.members) for group, ring in self._groups.items()}
