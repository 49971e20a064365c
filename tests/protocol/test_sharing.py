"""Events shared by a group: the pure rule (coterie.protocol.sharing)."""

from __future__ import annotations

from collections import Counter

import pytest

from coterie.protocol.framing import FrameDecoder
from coterie.protocol.sharing import (
    MAX_GROUP_LENGTH,
    MEMBER_TOPIC,
    Sharing,
    check_group,
    encode_member,
    read_member,
)


def test_each_group_gets_each_event_once_round_robin() -> None:
    sharing: Sharing[str] = Sharing()
    for member in ("a1", "a2", "a3"):
        sharing.join(member, "a", f"node-{member}")
    sharing.join("b1", "b", "node-b1")
    sharing.join("b2", "b", "node-b2")
    counts: Counter[str] = Counter()
    for _ in range(600):
        picked = sharing.targets()
        assert sorted(m[0] for m in picked) == ["a", "b"]
        counts.update(picked)
    assert counts == {"a1": 200, "a2": 200, "a3": 200, "b1": 300, "b2": 300}
    assert sharing.sizes() == {"a": 3, "b": 2}
    assert len(sharing) == 5 and "a1" in sharing and "x" not in sharing


def test_a_member_that_leaves_gets_nothing_more_and_the_turn_goes_on() -> None:
    sharing: Sharing[str] = Sharing()
    for member in ("m1", "m2", "m3"):
        sharing.join(member, "g", member)
    assert sharing.targets() == ["m1"]
    assert sharing.targets() == ["m2"]
    assert sharing.leave("m1") is True
    assert sharing.leave("m1") is False
    # m3 was next; it still is after an earlier member left.
    assert [sharing.targets()[0] for _ in range(4)] == ["m3", "m2", "m3", "m2"]
    sharing.leave("m2")
    sharing.leave("m3")
    assert sharing.targets() == []
    assert not sharing and sharing.sizes() == {}


def test_leaving_the_member_whose_turn_it_is_passes_the_turn_on() -> None:
    sharing: Sharing[str] = Sharing()
    for member in ("m1", "m2", "m3"):
        sharing.join(member, "g", member)
    assert sharing.targets() == ["m1"]
    sharing.leave("m2")
    assert [sharing.targets()[0] for _ in range(3)] == ["m3", "m1", "m3"]


def test_joining_again_moves_a_member_and_members_are_found_by_node() -> None:
    sharing: Sharing[str] = Sharing()
    sharing.join("link1", "a", "n1")
    sharing.join("link2", "a", "n1")
    sharing.join("link1", "b", "n1")
    assert sharing.sizes() == {"a": 1, "b": 1}
    assert sorted(sharing.of_node("n1")) == ["link1", "link2"]
    assert sharing.of_node("n2") == []


def test_group_names_are_checked() -> None:
    assert check_group(None) is None
    assert check_group("mailer") == "mailer"
    assert check_group("x" * MAX_GROUP_LENGTH) == "x" * MAX_GROUP_LENGTH
    with pytest.raises(TypeError, match="group must be a string"):
        check_group(3)
    with pytest.raises(ValueError, match="1 to 64 characters, got 65"):
        check_group("x" * (MAX_GROUP_LENGTH + 1))
    with pytest.raises(ValueError, match="got 0"):
        check_group("")


def test_member_frame_round_trips_and_other_frames_are_not_members() -> None:
    decoder = FrameDecoder()
    (args,) = decoder.feed(encode_member("id-1", "mailer"))
    assert args == [MEMBER_TOPIC, {"id": "id-1", "group": "mailer"}]
    assert read_member(args) == ("id-1", "mailer")
    assert read_member(["message::update", {"id": "x", "group": "g"}]) is None
    assert read_member([MEMBER_TOPIC]) is None
    assert read_member([MEMBER_TOPIC, "text"]) is None
    assert read_member([MEMBER_TOPIC, {"id": 1, "group": "g"}]) is None
    assert read_member([MEMBER_TOPIC, {"id": "x", "group": "y" * 65}]) is None
