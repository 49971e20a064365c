"""Events shared by a group over real sockets: ``Subscriber(group=...)``.

Each group gets each event exactly once, spread round robin over its live
members; a subscriber in no group gets every event. Waits are event driven
(the publisher's ``groups``, the deliveries counted) and bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from coterie import Publisher, Subscriber
from tests.helpers import MS, DiscoveryFactory, fast_discovery, wait_for
from tests.procs import ChildComponent

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


async def test_a_member_killed_mid_stream_loses_nothing_sent_after_its_link_dropped(
    disc_port: int, tmp_path: Path
) -> None:
    """One of three members is a real process, killed with SIGKILL mid-stream."""
    options = fast_discovery(disc_port)
    child_options = {k: v for k, v in dataclasses.asdict(options).items() if v is not None}
    log = tmp_path / "child.log"
    child = await ChildComponent.subscriber("a3", str(log), group="a", discovery=child_options)
    seen: dict[str, list[int]] = {"a1": [], "a2": []}
    try:
        async with AsyncExitStack() as stack:
            pub = await stack.enter_async_context(Publisher("pub", discovery=options))
            for name in seen:
                sub = await stack.enter_async_context(
                    Subscriber(name, group="a", discovery=options)
                )
                sub.on("tick", seen[name].append)
            await wait_for(lambda: pub.groups == {"a": 3}, timeout=SOON)
            n = 0

            async def publish(count: int) -> None:
                nonlocal n
                for _ in range(count):
                    await pub.publish("tick", n)
                    n += 1
                await asyncio.sleep(1 * MS)

            while n < 3_000:
                await publish(50)
            child.kill()
            killed_at = n
            async with asyncio.timeout(SOON):
                while pub.groups != {"a": 2}:
                    await publish(10)
            dropped_at = n  # everything from here on was sent after the drop was seen
            while n < dropped_at + 3_000:
                await publish(50)
            await child.stop()
            total = n
            # Two thirds of what went before the drop, all of what went after.
            expect = total - len(log.read_text().split())
            await wait_for(
                lambda: len(seen["a1"]) + len(seen["a2"]) >= expect - (dropped_at - killed_at),
                timeout=SOON,
            )
            await asyncio.sleep(50 * MS)  # nothing more is on its way: the last sends were local
    finally:
        child.kill()
        await child.stop()
    by_child = {int(line) for line in log.read_text().split()}
    survivors = set(seen["a1"]) | set(seen["a2"])
    assert len(survivors) == len(seen["a1"]) + len(seen["a2"]), "an event reached two members"
    after_drop = set(range(dropped_at, total))
    assert after_drop <= survivors, f"{len(after_drop - survivors)} sent after the drop were lost"
    lost = set(range(total)) - survivors - by_child
    print(
        f"kill test: {total} events, killed at {killed_at}, drop seen at {dropped_at}, "
        f"child got {len(by_child)}, lost {len(lost)} (all sent between kill and drop)"
    )
    assert lost <= set(range(killed_at - 50, dropped_at))
