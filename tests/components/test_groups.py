"""Events shared by a group over real sockets: ``Subscriber(group=...)``.

Each group gets each event exactly once, spread round robin over its live
members; a subscriber in no group gets every event. Waits are event driven
(the publisher's ``groups``, the deliveries counted) and bounded.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import pytest

from coterie import Publisher, Subscriber
from tests.helpers import MS, DiscoveryFactory, wait_for

SOON = 10_000 * MS
EVENTS = 10_000


async def test_each_group_sees_each_event_once_spread_over_its_members(
    disc: DiscoveryFactory,
) -> None:
    seen: dict[str, list[int]] = {}
    async with AsyncExitStack() as stack:
        pub = await stack.enter_async_context(Publisher("pub", discovery=disc()))
        subs: list[Subscriber] = []
        for name, group in [
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("plain", None),
        ]:
            sub = await stack.enter_async_context(Subscriber(name, group=group, discovery=disc()))
            got = seen.setdefault(name, [])
            sub.on("tick", got.append)
            subs.append(sub)
        assert subs[0].advertisement["group"] == "a"
        assert "group" not in subs[5].advertisement
        await pub.wait_subscribers(6, timeout=SOON)
        await wait_for(lambda: pub.groups == {"a": 3, "b": 2}, timeout=SOON)
        for n in range(EVENTS):
            # One subscriber in no group plus one member of each of the two groups.
            assert await pub.publish("tick", n) == 3
            if n % 500 == 499:
                await asyncio.sleep(0)
        await wait_for(lambda: sum(len(v) for v in seen.values()) == 3 * EVENTS, timeout=SOON)
    assert seen["plain"] == list(range(EVENTS))
    for members in (["a1", "a2", "a3"], ["b1", "b2"]):
        events = Counter(n for m in members for n in seen[m])
        assert len(events) == EVENTS and set(events.values()) == {1}, members
        share = EVENTS / len(members)
        for m in members:
            assert abs(len(seen[m]) - share) <= 0.1 * share, (m, len(seen[m]))


@pytest.mark.parametrize(
    ("group", "error", "text"),
    [
        (3, TypeError, "group must be a string"),
        ("m" * 65, ValueError, "group must be 1 to 64 characters, got 65"),
        ("", ValueError, "got 0"),
    ],
)
def test_bad_group_names_get_a_clear_error(group: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        Subscriber("s", group=group)
