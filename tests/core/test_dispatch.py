"""Dispatcher with fake routes: balancing, waiting, settle, timeouts, failover.

Routes here are plain objects that record the frames written to them; the
event loop is real (timers and futures), the clock for balancing is fake.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest

from coterie import LinkLostError, QueueFullError, RemoteError, RequestTimeoutError
from coterie.core.dispatch import Dispatcher, Pending, Route


class Writer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)


class FakeNode:
    def __init__(self, **adv: Any) -> None:
        self.advertisement: dict[str, Any] = {"name": "r", **adv}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def route(name: str, **adv: Any) -> Route:
    return Route(Writer(), FakeNode(name=name, **adv))


def frames(r: Route) -> list[bytes]:
    writer = r.writer
    assert isinstance(writer, Writer)
    return writer.frames


_ids = 0


def pending(request_type: str = "t", **kwargs: Any) -> Pending:
    global _ids
    _ids += 1
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    rid = f"1:{_ids}"
    return Pending(rid, rid.encode(), request_type, future, **kwargs)


def sent_to(p: Pending) -> str | None:
    return p.route.name if p.route is not None else None


async def test_round_robin_alternates() -> None:
    d = Dispatcher()
    a, b, c = route("a"), route("b"), route("c")
    for r in (a, b, c):
        d.add_route(r)
    ps = [pending() for _ in range(9)]
    for p in ps:
        d.submit(p, None)
    assert Counter(sent_to(p) for p in ps) == {"a": 3, "b": 3, "c": 3}
    # Strict rotation: no route is used twice in a row.
    names = [sent_to(p) for p in ps]
    assert all(x != y for x, y in itertools.pairwise(names))
    assert frames(a) + frames(b) + frames(c)
    assert d.inflight == 9


async def test_responds_to_filters_routes() -> None:
    d = Dispatcher()
    a, b = route("a", respondsTo=["x"]), route("b", respondsTo=["y"])
    node_route = route("node")  # a Node responder advertises no list: takes anything
    for r in (a, b, node_route):
        d.add_route(r)
    xs = [pending("x") for _ in range(4)]
    for p in xs:
        d.submit(p, None)
    assert {sent_to(p) for p in xs} == {"a", "node"}
    z = pending("z")
    d.submit(z, None)
    assert sent_to(z) == "node"


async def test_type_nobody_serves_waits() -> None:
    d = Dispatcher()
    d.add_route(route("a", respondsTo=["x"]))
    p = pending("y")
    d.submit(p, None)
    assert p.route is None and list(d.waiting) == [p]


async def test_subset_routes_only_to_that_subset() -> None:
    d = Dispatcher()
    blue, green, plain = route("blue", subset="blue"), route("green", subset="green"), route("p")
    for r in (blue, green, plain):
        d.add_route(r)
    ps = [pending(subset="blue") for _ in range(3)]
    for p in ps:
        d.submit(p, None)
    assert {sent_to(p) for p in ps} == {"blue"}
    lone = pending(subset="red")
    d.submit(lone, None)
    assert lone in d.waiting


async def test_reply_resolves_once_and_late_duplicates_are_dropped() -> None:
    d = Dispatcher()
    a = route("a")
    d.add_route(a)
    p = pending()
    d.submit(p, None)
    d.reply(a, [None, {"ok": True}, p.id])
    assert await p.future == {"ok": True}
    d.reply(a, [None, "again", p.id])  # duplicate
    d.reply(a, [None, "who?", "9:999"])  # unknown id
    assert d.late_replies == 2
    d.reply(a, ["too short"])
    assert d.late_replies == 2 and d.inflight == 0


async def test_reply_on_another_route_does_not_match() -> None:
    d = Dispatcher()
    a, b = route("a"), route("b")
    d.add_route(a)
    p = pending()
    d.submit(p, None)
    d.add_route(b)
    d.reply(b, [None, "spoof", p.id])
    assert not p.future.done()
    d.reply(a, [None, "real", p.id])
    assert await p.future == "real"


async def test_error_reply_and_empty_result() -> None:
    d = Dispatcher()
    a = route("a")
    d.add_route(a)
    p, q = pending(), pending()
    d.submit(p, None)
    d.submit(q, None)
    d.reply(a, [{"message": "nope", "name": "ValueError"}, p.id])
    d.reply(a, [None, q.id])
    with pytest.raises(RemoteError, match="nope") as info:
        await p.future
    assert info.value.name == "ValueError"
    assert await q.future is None


async def test_waiting_requests_go_to_the_first_route() -> None:
    d = Dispatcher(settle=0)
    p = pending()
    d.submit(p, None)
    assert p.route is None
    a = route("a")
    d.add_route(a)
    assert sent_to(p) == "a" and not d.waiting


async def test_backlog_spreads_over_routes_arriving_within_settle() -> None:
    d = Dispatcher(settle=0.05)
    ps = [pending() for _ in range(12)]
    for p in ps:
        d.submit(p, None)
    a, b, c = route("a"), route("b"), route("c")
    d.add_route(a)
    # The first responder takes only the oldest request at once.
    assert sent_to(ps[0]) == "a" and sum(p.route is not None for p in ps) == 1
    # A request sent during the settle window queues behind the backlog.
    late = pending()
    d.submit(late, None)
    assert late in d.waiting
    d.add_route(b)
    d.add_route(c)
    await asyncio.sleep(0.15)
    everyone = [*ps, late]
    assert all(p.route is not None for p in everyone)
    counts = Counter(sent_to(p) for p in everyone)
    assert set(counts) == {"a", "b", "c"}, counts
    assert max(counts.values()) - min(counts.values()) <= 1, counts


async def test_timeout_withdraws_a_waiting_request() -> None:
    d = Dispatcher()
    p = pending()
    d.submit(p, 0.05)
    with pytest.raises(RequestTimeoutError, match="waiting for a responder") as info:
        await asyncio.wait_for(p.future, 1)
    assert isinstance(info.value, TimeoutError)
    assert not d.waiting
    a = route("a")
    d.add_route(a)
    assert frames(a) == []  # a responder arriving later never sees it


async def test_timeout_withdraws_an_inflight_request() -> None:
    d = Dispatcher()
    a = route("a")
    d.add_route(a)
    p = pending()
    d.submit(p, 0.05)
    with pytest.raises(RequestTimeoutError, match="in flight to a"):
        await asyncio.wait_for(p.future, 1)
    assert a.inflight == {}
    d.reply(a, [None, "late", p.id])
    assert d.late_replies == 1


async def test_answered_request_never_expires() -> None:
    d = Dispatcher()
    a = route("a")
    d.add_route(a)
    p = pending()
    d.submit(p, 0.05)
    d.reply(a, [None, 1, p.id])
    await asyncio.sleep(0.1)  # past the bound: an answered request never expires
    assert await p.future == 1


async def test_cancel_withdraws() -> None:
    d = Dispatcher()
    p = pending()
    d.submit(p, 5)
    d.cancel(p)
    assert not d.waiting
    a = route("a")
    d.add_route(a)
    q = pending()
    d.submit(q, 5)
    d.cancel(q)
    assert a.inflight == {}


async def test_remove_route_resends_inflight_elsewhere() -> None:
    d = Dispatcher()
    a, b = route("a"), route("b")
    d.add_route(a)
    d.add_route(b)
    ps = [pending() for _ in range(4)]
    for p in ps:
        d.submit(p, None)
    lost = [p for p in ps if sent_to(p) == "a"]
    assert lost
    d.remove_route(a)
    assert all(sent_to(p) == "b" for p in ps)
    assert d.retried == len(lost)
    assert [f for f in frames(b) if f in {p.frame for p in lost}]
    d.reply(a, [None, "ghost", lost[0].id])  # the dead route's reply cannot match
    assert not lost[0].future.done()


async def test_remove_last_route_queues_inflight_until_another_comes() -> None:
    d = Dispatcher(settle=0)
    a = route("a")
    d.add_route(a)
    p = pending()
    d.submit(p, None)
    d.remove_route(a)
    assert list(d.waiting) == [p]
    b = route("b")
    d.add_route(b)
    assert sent_to(p) == "b"


async def test_remove_route_fails_retry_false_with_link_lost() -> None:
    d = Dispatcher()
    a, b = route("a"), route("b")
    d.add_route(a)
    p = pending(retry=False)
    d.submit(p, 5)
    d.add_route(b)
    d.remove_route(a)
    with pytest.raises(LinkLostError, match="retry=False"):
        await p.future
    assert frames(b) == []


async def test_draining_route_takes_nothing_new_and_reports_when_empty() -> None:
    drained: list[str] = []
    d = Dispatcher(on_drained=lambda r: drained.append(r.name))
    a, b = route("a"), route("b")
    d.add_route(a)
    d.add_route(b)
    p = pending()
    d.submit(p, None)
    busy = p.route
    assert busy is not None
    d.drain_route(busy)
    assert drained == []
    q = pending()
    d.submit(q, None)
    assert q.route is not busy
    d.reply(busy, [None, "done", p.id])
    assert drained == [busy.name]


async def test_pending_balance_picks_fewest_inflight() -> None:
    d = Dispatcher(balance="pending")
    a, b = route("a"), route("b")
    d.add_route(a)
    d.add_route(b)
    ps = [pending() for _ in range(4)]
    for p in ps:
        d.submit(p, None)
    assert len(a.inflight) == len(b.inflight) == 2
    for p in [p for p in ps if sent_to(p) == "a"]:
        d.reply(a, [None, 1, p.id])
    more = [pending() for _ in range(2)]
    for p in more:
        d.submit(p, None)
    assert {sent_to(p) for p in more} == {"a"}


async def test_time_balance_prefers_the_faster_route() -> None:
    clock = Clock()
    d = Dispatcher(balance="time", clock=clock)
    slow, fast = route("slow"), route("fast")
    d.add_route(slow)
    d.add_route(fast)
    # Untried routes are measured first.
    p1 = pending()
    d.submit(p1, None)
    assert sent_to(p1) == "slow"
    clock.now += 0.5
    d.reply(slow, [None, 1, p1.id])
    p2 = pending()
    d.submit(p2, None)
    assert sent_to(p2) == "fast"
    clock.now += 0.01
    d.reply(fast, [None, 1, p2.id])
    picks = []
    for _ in range(7):  # requests 3-9; every 10th explores at random
        p = pending()
        d.submit(p, None)
        picks.append(sent_to(p))
        d.reply(p.route, [None, 1, p.id])  # type: ignore[arg-type]
    assert picks == ["fast"] * 7
    assert fast.average(clock.now) == pytest.approx(0.01 / 8)


async def test_queue_full() -> None:
    d = Dispatcher(max_waiting=2)
    d.submit(pending(), None)
    d.submit(pending(), None)
    extra = pending()
    with pytest.raises(QueueFullError, match="max_waiting=2"):
        d.submit(extra, 5)
    assert len(d.waiting) == 2


async def test_close_fails_everything() -> None:
    d = Dispatcher()
    waiting = pending()
    d.submit(waiting, None)
    a = route("a")
    d.add_route(route("a"))
    d.add_route(a)
    flying = pending()
    d.submit(flying, 5)
    d.close(RuntimeError("closed"))
    for p in (waiting, flying):
        with pytest.raises(RuntimeError, match="closed"):
            await p.future
    assert d._sweep_handle is None and not d._deadlines  # no timer left behind


def test_unknown_balance_policy() -> None:
    with pytest.raises(ValueError, match="balance"):
        Dispatcher(balance="random")  # type: ignore[arg-type]
