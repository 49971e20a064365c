"""The observer (coterie.observe): the events components fire, combine(), stats().

Components run over real sockets with a recording observer; the events are
checked in order and with their values. With nothing observing, no event
runs at all (the request path's one ``None`` check).
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from coterie import (
    Monitor,
    Observer,
    Publisher,
    RemoteError,
    Requester,
    Responder,
    Subscriber,
)
from coterie.observe import (
    TRACE_FIELD,
    Handling,
    PublisherStats,
    RequesterStats,
    ResponderStats,
    SubscriberStats,
    combine,
)
from coterie.testing import Mesh
from tests.helpers import MS, DiscoveryFactory, wait_for, work_every_role

SOON = 5_000 * MS

Event = tuple[Any, ...]


class _Done:
    def __init__(self, log: list[Event], request_type: Any, context: Any = None) -> None:
        self.log = log
        self.request_type = request_type
        self.context: contextvars.Context | None = context

    def done(self, error: BaseException | None) -> None:
        self.log.append(("done", self.request_type, type(error).__name__ if error else None))


class Recorder(Observer):
    """Every event, in order, with what it was told."""

    def __init__(self) -> None:
        self.log: list[Event] = []

    def started(self) -> None:
        self.log.append(("started",))

    def closed(self) -> None:
        self.log.append(("closed",))

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        self.log.append(("begin", request["type"], request_id))
        return request

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        self.log.append(("end", request_type, request_id, type(error).__name__ if error else None))

    def handling(self, request_type: Any, carrier: Any) -> Handling:
        self.log.append(("handling", request_type, carrier))
        return _Done(self.log, request_type)

    def refused(self, request_type: Any, outcome: str) -> None:
        self.log.append(("refused", request_type, outcome))

    def link_opened(self, address: str, again: bool) -> None:
        self.log.append(("link_opened", address, again))

    def link_closed(self, address: str, error: BaseException | None) -> None:
        self.log.append(("link_closed", address))

    def published(self, event: str) -> None:
        self.log.append(("published", event))

    def received(self, event: str) -> None:
        self.log.append(("received", event))

    def named(self, *names: str) -> list[Event]:
        return [e for e in self.log if e[0] in names]


async def test_requests_and_handlers_fire_their_events_in_order(disc: DiscoveryFactory) -> None:
    seen_req, seen_rep = Recorder(), Recorder()
    async with Responder("validation", discovery=disc(), observer=seen_rep) as responder:
        responder.on("validate", lambda req: req["cardno"].startswith("4"))

        @responder.on("charge")
        async def charge(req: dict[str, Any]) -> None:
            raise ValueError("card declined")

        async with Requester("payment", discovery=disc(), observer=seen_req) as requester:
            await requester.wait_connected(1, timeout=SOON)
            assert await requester.send({"type": "validate", "cardno": "4111"}) is True
            with pytest.raises(RemoteError):
                await requester.send({"type": "charge"}, timeout=SOON)
            with pytest.raises(TypeError):  # not JSON: ends before it is framed
                await requester.send({"type": "validate", "cardno": object()})
            assert requester.stats().links == 1
        await wait_for(lambda: seen_rep.named("link_closed"), SOON)

    assert seen_req.log[0] == ("started",)
    (opened,) = seen_req.named("link_opened")
    assert opened[1].endswith(f":{responder.port}") and opened[2] is False
    pid = seen_req.named("begin")[0][2].split(":")[0]
    assert seen_req.named("begin", "end") == [
        ("begin", "validate", f"{pid}:1"),
        ("end", "validate", f"{pid}:1", None),
        ("begin", "charge", f"{pid}:2"),
        ("end", "charge", f"{pid}:2", "RemoteError"),
        ("begin", "validate", f"{pid}:3"),
        ("end", "validate", f"{pid}:3", "TypeError"),
    ]
    assert seen_req.log[-2:] == [("link_closed", opened[1]), ("closed",)]

    assert seen_rep.log[0] == ("started",)
    assert seen_rep.named("handling", "done") == [
        ("handling", "validate", None),
        ("done", "validate", None),
        ("handling", "charge", None),
        ("done", "charge", "ValueError"),
    ]
    assert [e[0] for e in seen_rep.named("link_opened", "link_closed")] == [
        "link_opened",
        "link_closed",
    ]
    assert seen_rep.log[-1] == ("closed",)


async def test_a_handler_never_sees_the_trace_field_an_observer_hears(
    disc: DiscoveryFactory,
) -> None:
    class Tracer(Recorder):
        def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
            return {**request, TRACE_FIELD: {"traceparent": request_id}}

    got: list[dict[str, Any]] = []
    seen = Recorder()
    async with Responder("echo", discovery=disc(), observer=seen) as responder:
        responder.on("echo", lambda req: got.append(req))
        async with Requester("caller", discovery=disc(), observer=Tracer()) as requester:
            await requester.wait_connected(1, timeout=SOON)
            await requester.send({"type": "echo"})
    assert got == [{"type": "echo"}]
    ((_, request_type, carrier),) = seen.named("handling")
    assert request_type == "echo" and set(carrier) == {"traceparent"}


async def test_pubsub_and_monitor_links_fire_like_any_link(disc: DiscoveryFactory) -> None:
    seen_pub, seen_sub = Recorder(), Recorder()
    got: list[int] = []
    async with (
        Monitor("monitor", discovery=disc()) as monitor,
        Publisher("ticker", discovery=disc(), observer=seen_pub) as publisher,
        Subscriber("listener", discovery=disc(), observer=seen_sub) as subscriber,
    ):
        subscriber.on("tick", got.append)
        await publisher.wait_subscribers(1, timeout=SOON)
        await wait_for(lambda: subscriber.stats().monitors == 1, SOON)
        await publisher.publish("tick", 1)
        await publisher.publish("tock", 2)
        await wait_for(lambda: got == [1], SOON)
        await wait_for(lambda: len(seen_sub.named("received")) == 2, SOON)
        sub_stats = subscriber.stats()
        pub_stats = publisher.stats()
    assert seen_pub.named("published") == [("published", "tick"), ("published", "tock")]
    assert seen_sub.named("received") == [("received", "tick"), ("received", "tock")]
    # Two outgoing links: the publisher's and the monitor's, told alike.
    opened = {address for _, address, _ in seen_sub.named("link_opened")}
    assert (
        opened == {a for a in opened if a.endswith((f":{publisher.port}", f":{monitor.port}"))}
        and len(opened) == 2
    )
    assert len(seen_sub.named("link_closed")) == 2
    assert isinstance(sub_stats, SubscriberStats) and isinstance(pub_stats, PublisherStats)
    assert (sub_stats.role, sub_stats.links, sub_stats.monitors, sub_stats.received) == (
        "subscriber",
        1,
        1,
        2,
    )
    assert (pub_stats.role, pub_stats.links, pub_stats.published, pub_stats.dropped) == (
        "publisher",
        1,
        2,
        0,
    )
    assert pub_stats.nodes[subscriber.id] == "subscriber"
    assert pub_stats.nodes[monitor.id] == "monitor"


async def test_stats_of_a_request_in_flight(disc: DiscoveryFactory) -> None:
    release = asyncio.Event()
    async with Responder("slow", discovery=disc()) as responder:

        @responder.on("hold")
        async def hold(req: dict[str, Any]) -> str:
            await release.wait()
            return "done"

        async with Requester("caller", discovery=disc(), max_waiting=5) as requester:
            await requester.wait_connected(1, timeout=SOON)
            held = asyncio.ensure_future(requester.send({"type": "hold"}, timeout=SOON))
            queued = asyncio.ensure_future(requester.send({"type": "other"}, timeout=SOON))
            await wait_for(lambda: responder.stats().in_progress == 1, SOON)
            during, served = requester.stats(), responder.stats()
            release.set()
            assert await held == "done"
            queued.cancel()
            await asyncio.gather(queued, return_exceptions=True)
            after = requester.stats()
    assert isinstance(during, RequesterStats) and isinstance(served, ResponderStats)
    assert (during.role, during.links, during.in_flight, during.waiting) == ("requester", 1, 1, 1)
    assert during.in_flight_on == {responder.id: 1}
    assert during.ejected == () and during.resent == 0 and during.late_replies == 0
    assert during.nodes[responder.id] == "responder"
    assert (served.role, served.links, served.in_progress, served.handled) == (
        "responder",
        1,
        1,
        0,
    )
    assert (after.in_flight, after.waiting, after.in_flight_on) == (0, 0, {responder.id: 0})


def test_combine_is_none_one_or_a_fan_out_in_order() -> None:
    assert combine() is None
    assert combine(None, None) is None
    one = Recorder()
    assert combine(None, one, None) is one

    class Tag(Recorder):
        def __init__(self, tag: str, context: contextvars.Context | None) -> None:
            super().__init__()
            self.tag = tag
            self.context = context

        def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
            super().request_begin(request, request_id)
            return {**request, "by": [*request.get("by", []), self.tag]}

        def handling(self, request_type: Any, carrier: Any) -> Handling:
            super().handling(request_type, carrier)
            return _Done(self.log, request_type, self.context)

    first, last = contextvars.copy_context(), contextvars.copy_context()
    a, b, c = Tag("a", first), Tag("b", None), Tag("c", last)
    both = combine(a, None, b)
    assert both is not None
    everything = combine(both, c)  # a fan-out in a fan-out keeps the order
    assert everything is not None
    request = {"type": "t"}
    assert everything.request_begin(request, "1") == {"type": "t", "by": ["a", "b", "c"]}
    assert request == {"type": "t"}  # the caller's dict is untouched
    handling = everything.handling("t", None)
    assert handling.context is last  # the last one that gives a context
    handling.done(None)
    everything.link_opened("h:1", True)
    everything.request_end("1", "t", None)
    for each in (a, b, c):
        assert [e[0] for e in each.log] == ["begin", "handling", "done", "link_opened", "end"]
        assert each.log[3] == ("link_opened", "h:1", True)


def test_the_base_observer_ignores_every_event() -> None:
    quiet = Observer()
    request = {"type": "t"}
    assert quiet.request_begin(request, "1") is request
    handling = quiet.handling("t", None)
    assert handling.context is None
    handling.done(None)
    quiet.request_end("1", "t", None)


async def test_nothing_observing_fires_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def fired(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an observer event ran with nothing observing")

    for event in [n for n in vars(Observer) if not n.startswith("_")]:
        monkeypatch.setattr(Observer, event, fired)

    async with Mesh() as mesh:
        await work_every_role(mesh)
    # The same component with an observer does reach Observer's events.
    with pytest.raises(AssertionError, match="nothing observing"):
        async with Mesh() as mesh:
            mesh.responder("validation", observer=Observer())
            await mesh.start()
