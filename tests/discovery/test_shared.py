"""The one per-loop registry: what the components of one event loop share, by key."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from coterie.discovery.shared import PerLoop


class Thing:
    def __init__(self, name: str) -> None:
        self.name = name
        self.started = 0


async def test_the_first_caller_makes_and_starts_and_the_others_wait_for_it() -> None:
    shared: PerLoop[Thing] = PerLoop("thing")
    gate = asyncio.Event()
    made: list[Thing] = []

    def make() -> Thing:
        made.append(Thing("a"))
        return made[-1]

    async def start(thing: Thing) -> None:
        await gate.wait()
        thing.started += 1

    joins = [asyncio.ensure_future(shared.join("k", make, start)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(j.done() for j in joins) and len(made) == 1
    gate.set()
    things = await asyncio.wait_for(asyncio.gather(*joins), 5)
    assert things == [made[0]] * 3 and made[0].started == 1
    assert shared.get("k") is made[0] and len(shared) == 1


async def test_a_failed_start_is_raised_to_every_waiter_and_forgotten() -> None:
    shared: PerLoop[Thing] = PerLoop("thing")
    gate = asyncio.Event()

    async def fail(thing: Thing) -> None:
        await gate.wait()
        raise OSError("port taken")

    first = asyncio.ensure_future(shared.join("k", lambda: Thing("a"), fail))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(shared.join("k", lambda: Thing("b"), fail))
    await asyncio.sleep(0)
    gate.set()
    for waiter in (first, second):
        with pytest.raises(OSError, match="port taken"):
            await asyncio.wait_for(waiter, 5)
    assert shared.get("k") is None

    async def fine(thing: Thing) -> None:
        thing.started += 1

    again = await shared.join("k", lambda: Thing("c"), fine)
    assert again.name == "c" and again.started == 1


async def test_discard_removes_only_the_entry_it_names() -> None:
    shared: PerLoop[Thing] = PerLoop("thing")
    old = shared.setdefault("k", lambda: Thing("old"))
    assert shared.setdefault("k", lambda: Thing("other")) is old
    shared.discard("k", old)
    new = shared.setdefault("k", lambda: Thing("new"))
    shared.discard("k", old)  # a late close of the old one leaves the new one alone
    assert shared.get("k") is new
    shared.discard("k", new)
    assert shared.get("k") is None and len(shared) == 0


def test_each_loop_has_its_own_entries_and_takes_them_when_it_goes() -> None:
    shared: PerLoop[Thing] = PerLoop("thing")

    async def take() -> Thing:
        return shared.setdefault("k", lambda: Thing("x"))

    first_loop, second_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        a = first_loop.run_until_complete(take())
        b = second_loop.run_until_complete(take())
        assert a is not b and first_loop.run_until_complete(take()) is a
    finally:
        first_loop.close()
        second_loop.close()
    gone = [weakref.ref(first_loop), weakref.ref(second_loop)]
    del first_loop, second_loop
    gc.collect()
    assert [ref() for ref in gone] == [None, None]  # the registry keeps no loop alive


def test_a_joined_entry_keeps_no_loop_alive() -> None:
    shared: PerLoop[Thing] = PerLoop("thing")

    async def start(thing: Thing) -> None:
        thing.started += 1

    loop = asyncio.new_event_loop()
    try:
        thing = loop.run_until_complete(shared.join("k", lambda: Thing("x"), start))
        assert thing.started == 1
    finally:
        loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None
