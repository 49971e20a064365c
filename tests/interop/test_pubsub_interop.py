"""Publish/subscribe and monitoring between coterie and real Node cote 1.2.0.

Every test runs inside the session's private network namespace (the fixtures
of this folder skip otherwise), where Node cote's 255.255.255.255 hellos and
coterie's 127.255.255.255 hellos both stay on loopback.

A Node publisher, like cote's, sends each event only to the subscribers
connected at that moment; a freshly accepted TCP link may not be registered
yet when the link is up on our side, so the Node -> Python tests publish
until the first event arrives, then check exact delivery of the next ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from coterie import Monitor, Observer, Publisher, Requester, Responder, Subscriber
from tests.helpers import MS, ms, wait_for
from tests.interop.conftest import NodePeerFactory
from tests.interop.nodepeer import FAST_DISCOVERY, NodePeer, python_discovery

FIRST_CONTACT = 5_000 * MS  # allowed for discovery plus the first link
STATUS = 200 * MS  # between status reports of the Python components here


@dataclass(frozen=True)
class Variant:
    """One way of scoping the components; both sides get the same."""

    id: str
    namespace: str | None = None
    key: str | None = None

    def python_kwargs(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "key": self.key, "discovery": python_discovery()}

    def node_config(self, name: str, **more: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"name": name, "discovery": dict(FAST_DISCOVERY), **more}
        if self.namespace is not None:
            config["namespace"] = self.namespace
        if self.key is not None:
            config["key"] = self.key
        return config


VARIANTS = [Variant("plain"), Variant("namespace", namespace="rnd"), Variant("key", key="feed")]


@pytest.fixture(autouse=True)
def _no_stray_cote_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COTE_ENV", raising=False)


class Inbox:
    """Collects ``(event, data)`` deliveries; ``get`` waits with a timeout."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def __call__(self, event: str, data: Any) -> None:
        self.queue.put_nowait((event, data))

    async def get(self, timeout: float = 3_000 * MS) -> tuple[str, Any]:
        async with asyncio.timeout(timeout):
            return await self.queue.get()


async def publish_until_delivered(publisher: NodePeer, inbox: Inbox) -> tuple[str, Any]:
    """Publish ``warmup`` events from Node until the first reaches ``inbox``."""
    async with asyncio.timeout(FIRST_CONTACT):
        for n in range(1000):
            await publisher.send_cmd({"cmd": "publish", "topic": "warmup", "data": {"n": n}})
            try:
                return await inbox.get(timeout=200 * MS)
            except TimeoutError:
                continue
    raise AssertionError("no warmup event arrived")


async def drain(inbox: Inbox, wait: float = 300 * MS) -> list[tuple[str, Any]]:
    await asyncio.sleep(wait)
    out = []
    while not inbox.queue.empty():
        out.append(inbox.queue.get_nowait())
    return out


# --- Node publisher -> Python subscriber -------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
async def test_node_publisher_to_python_subscriber(
    variant: Variant, node_peer: NodePeerFactory
) -> None:
    publisher = await node_peer("publisher", variant.node_config("node prices"))
    async with Subscriber("py ticker", **variant.python_kwargs()) as sub:
        inbox = Inbox()
        sub.on("*", inbox)
        await sub.wait_connected(1, timeout=FIRST_CONTACT)
        event, data = await publish_until_delivered(publisher, inbox)
        assert event == "warmup" and isinstance(data["n"], int)
        await drain(inbox, 100 * MS)  # later warmups, if any were in flight
        await publisher.send_cmd({"cmd": "publish", "topic": "update", "data": {"price": 7}})
        await publisher.send_cmd({"cmd": "publish", "topic": "update", "data": [1, None, "x"]})
        assert await inbox.get() == ("update", {"price": 7})
        assert await inbox.get() == ("update", [1, None, "x"])
        assert await drain(inbox) == []
        assert sub.connected == 1
        (node,) = sub.peers
        assert node.advertisement["axon_type"] == "pub-emitter"
        assert node.advertisement.get("namespace") == variant.namespace


async def test_node_publisher_filtered_by_python_subscribes_to(
    node_peer: NodePeerFactory,
) -> None:
    variant = Variant("namespace", namespace="shop")
    publisher = await node_peer("publisher", variant.node_config("node shop"))
    async with Subscriber(
        "py users", subscribes_to=["user.*", "warmup"], **variant.python_kwargs()
    ) as sub:
        inbox = Inbox()
        sub.on("*", inbox)
        await sub.wait_connected(1, timeout=FIRST_CONTACT)
        await publish_until_delivered(publisher, inbox)
        await drain(inbox, 100 * MS)
        for topic in ("order.created", "user.created", "user.", "user.deleted"):
            await publisher.send_cmd({"cmd": "publish", "topic": topic, "data": topic})
        assert await inbox.get() == ("user.created", "user.created")
        assert await inbox.get() == ("user.deleted", "user.deleted")
        assert await drain(inbox) == []


async def test_node_publisher_does_not_reach_other_namespace(
    node_peer: NodePeerFactory,
) -> None:
    publisher = await node_peer("publisher", Variant("a", namespace="a").node_config("node a"))
    async with (
        Subscriber("py a", **Variant("a", namespace="a").python_kwargs()) as sub_a,
        Subscriber("py b", **Variant("b", namespace="b").python_kwargs()) as sub_b,
    ):
        in_a, in_b = Inbox(), Inbox()
        sub_a.on("*", in_a)
        sub_b.on("*", in_b)
        await sub_a.wait_connected(1, timeout=FIRST_CONTACT)
        await publish_until_delivered(publisher, in_a)
        assert sub_b.connected == 0
        assert await drain(in_b) == []


# --- Python publisher -> Node subscriber -------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
async def test_python_publisher_to_node_subscriber(
    variant: Variant, node_peer: NodePeerFactory
) -> None:
    async with Publisher("py prices", broadcasts=["update"], **variant.python_kwargs()) as pub:
        subscriber = await node_peer(
            "subscriber", variant.node_config("node ticker", subscribesTo=["update"])
        )
        await pub.wait_subscribers(1, timeout=FIRST_CONTACT)
        added = await subscriber.wait_for("added", timeout=FIRST_CONTACT)
        assert await pub.publish("ignored", {"not": "subscribed"}) == 1
        assert await pub.publish("update", {"price": 7}) == 1
        assert await pub.publish("update", "two") == 1
        first = await subscriber.wait_for("message", timeout=3_000 * MS)
        assert (first["topic"], first["data"]) == ("update", {"price": 7})
        await subscriber.wait_for_count("message", 2, timeout=3_000 * MS)
        await asyncio.sleep(200 * MS)
        messages = [(e["topic"], e["data"]) for e in subscriber.find("message")]
        assert messages == [("update", {"price": 7}), ("update", "two")]
    adv = added["advertisement"]
    assert adv["axon_type"] == "pub-emitter"
    assert adv["broadcasts"] == ["update"]
    assert adv.get("namespace") == variant.namespace
    assert adv["port"] == pub.port


async def test_python_publisher_wildcard_node_subscriber(node_peer: NodePeerFactory) -> None:
    variant = Variant("namespace", namespace="rnd")
    async with Publisher("py feed", **variant.python_kwargs()) as pub:
        subscriber = await node_peer("subscriber", variant.node_config("node all"))
        await pub.wait_subscribers(1, timeout=FIRST_CONTACT)
        for n, topic in enumerate(("a", "b", "c")):
            await pub.publish(topic, n)
        await subscriber.wait_for_count("message", 3, timeout=3_000 * MS)
        messages = [(e["topic"], e["data"]) for e in subscriber.find("message")]
        assert messages == [("a", 0), ("b", 1), ("c", 2)]


async def test_groups_share_events_and_a_node_subscriber_still_gets_every_one(
    node_peer: NodePeerFactory,
) -> None:
    # 3 + 2 coterie members in two groups, one plain coterie subscriber and one
    # Node cote subscriber; 10,000 events.
    events = 10_000
    seen: dict[str, list[int]] = {}
    members = [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("b2", "b"), ("plain", None)]
    async with Publisher("py feed", discovery=python_discovery()) as pub:
        subs = [
            Subscriber(name, group=group, discovery=python_discovery()) for name, group in members
        ]
        try:
            for sub in subs:
                await sub.start()
                sub.on("tick", seen.setdefault(sub.name, []).append)
            node_sub = await node_peer(
                "subscriber", {"name": "node ticker", "subscribesTo": ["tick"]}
            )
            await pub.wait_subscribers(7, timeout=FIRST_CONTACT)
            await wait_for(lambda: pub.groups == {"a": 3, "b": 2}, FIRST_CONTACT)
            for n in range(events):
                # plain, Node, and one member of each group
                assert await pub.publish("tick", n) == 4
                if n % 500 == 499:
                    await asyncio.sleep(0)
            await node_sub.wait_for_count("message", events, timeout=30_000 * MS)
            await wait_for(lambda: sum(len(v) for v in seen.values()) == 3 * events, 10_000 * MS)
        finally:
            for sub in subs:
                await sub.close()
    assert [e["data"] for e in node_sub.find("message")] == list(range(events))
    assert seen["plain"] == list(range(events))
    for group in (["a1", "a2", "a3"], ["b1", "b2"]):
        got = sorted(n for m in group for n in seen[m])
        assert got == list(range(events)), group
        share = events / len(group)
        assert all(abs(len(seen[m]) - share) <= 0.1 * share for m in group), group


async def test_a_node_publisher_knows_no_groups_and_sends_every_member_everything(
    node_peer: NodePeerFactory,
) -> None:
    # It ignores the frame a grouped subscriber names itself with.
    publisher = await node_peer("publisher", {"name": "node prices"})
    async with (
        Subscriber("m1", group="mailer", discovery=python_discovery()) as m1,
        Subscriber("m2", group="mailer", discovery=python_discovery()) as m2,
    ):
        inboxes = [Inbox(), Inbox()]
        m1.on("*", inboxes[0])
        m2.on("*", inboxes[1])
        await m1.wait_connected(1, timeout=FIRST_CONTACT)
        await m2.wait_connected(1, timeout=FIRST_CONTACT)
        await publish_until_delivered(publisher, inboxes[0])
        await publish_until_delivered(publisher, inboxes[1])
        await drain(inboxes[0], 0)
        await drain(inboxes[1], 0)
        for n in range(3):
            await publisher.send_cmd({"cmd": "publish", "topic": "signup", "data": n})
        for inbox in inboxes:
            # A late warm-up event may still come first (publish_until_delivered repeats it).
            got: list[Any] = []
            while len(got) < 3:
                event = await inbox.get()
                if event[0] != "warmup":
                    got.append(event)
            assert got == [("signup", n) for n in range(3)]


# --- links through discovery gaps and closes (issue 28) ---------------------


class LinkCount(Observer):
    """Counts the links a component opens and loses."""

    def __init__(self) -> None:
        self.opened: list[bool] = []  # each link's ``again`` flag
        self.lost = asyncio.Event()

    def link_opened(self, address: str, again: bool) -> None:
        self.opened.append(again)

    def link_closed(self, address: str, error: BaseException | None) -> None:
        self.lost.set()


async def test_a_discovery_gap_keeps_the_link_to_a_node_publisher(
    node_peer: NodePeerFactory,
) -> None:
    # cote's "Does not try to reconnect twice to the same publisher".
    publisher = await node_peer("publisher", {"name": "node prices"})
    links = LinkCount()
    async with Subscriber("py ticker", discovery=python_discovery(), observer=links) as sub:
        inbox = Inbox()
        sub.on("*", inbox)
        await sub.wait_connected(1, timeout=FIRST_CONTACT)
        await publish_until_delivered(publisher, inbox)
        gap = 3 * FAST_DISCOVERY["nodeTimeout"]
        await publisher.send_cmd({"cmd": "pause_hellos", "ms": gap})
        await publisher.wait_for("hellos_resumed", timeout=gap / 1000 + 5_000 * MS)
        await drain(inbox, 0)
        await publisher.send_cmd({"cmd": "publish", "topic": "after", "data": 1})
        assert await inbox.get() == ("after", 1)
    assert len(publisher.find("connect")) == 1, publisher.describe()
    assert links.opened == [False]


async def test_a_subscriber_does_not_reconnect_to_a_closing_node_publisher(
    node_peer: NodePeerFactory,
) -> None:
    # A closing cote publisher ends its links and says no goodbye; its port may
    # still accept, or already serve another component (cote's tests reuse
    # 8000 at once). cote's subscriber never reconnects; coterie's must not either.
    publisher = await node_peer("publisher", {"name": "node prices"})
    links = LinkCount()
    async with Subscriber("py ticker", discovery=python_discovery(), observer=links) as sub:
        inbox = Inbox()
        sub.on("*", inbox)
        gone = asyncio.Event()
        assert sub.discovery is not None
        sub.discovery.on(lambda event, node: gone.set() if event == "removed" else None)
        await sub.wait_connected(1, timeout=FIRST_CONTACT)
        await publish_until_delivered(publisher, inbox)  # a link that worked
        await publisher.send_cmd({"cmd": "pause_hellos", "ms": 60_000})  # closing: no more
        await publisher.send_cmd({"cmd": "end_links"})
        async with asyncio.timeout(FIRST_CONTACT):
            await links.lost.wait()
            await gone.wait()  # dropped at once, not after the node timeout
        await publisher.send_cmd({"cmd": "publish", "topic": "probe", "data": 1})
        await publisher.wait_for("published", predicate=lambda e: e["topic"] == "probe")
        assert sub.connected == 0
    assert len(publisher.find("connect")) == 1, publisher.describe()
    assert links.opened == [False], "a link was opened again to a publisher that closed"


# --- Monitoring across languages -----------------------------------------------


async def test_node_monitor_receives_python_requester_status(
    node_peer: NodePeerFactory,
) -> None:
    monitor = await node_peer("monitor", {"name": "node monitor"})
    async with (
        Responder("py time", discovery=python_discovery()) as rep,
        Requester("py client", discovery=python_discovery(), status_interval=STATUS) as req,
    ):
        rep.on("time", lambda r: 1)
        await req.wait_connected(1, timeout=FIRST_CONTACT)
        assert await req.send({"type": "time"}, timeout=FIRST_CONTACT) == 1
        event = await monitor.wait_for(
            "status",
            timeout=FIRST_CONTACT,
            predicate=lambda e: (
                e["status"]["id"] == req.id
                and e["status"].get("traffic", {}).get(rep.id, {}).get("requests") == 1
            ),
        )
        # cote's monitor takes coterie's extra field in its stride and keeps listening.
        assert event["status"] == {
            "id": req.id,
            "nodes": [rep.id],
            "traffic": {rep.id: {"requests": 1, "errors": 0}},
        }
        assert req.monitors == 1
        count = len(monitor.find("status", lambda e: e["status"]["id"] == req.id))
        # Reports keep coming every status interval.
        await monitor.wait_for_count(
            "status", count + 2, timeout=3_000 * MS, predicate=lambda e: e["status"]["id"] == req.id
        )
    assert event["status"]["id"] == req.id


async def test_node_monitor_receives_python_subscriber_status(
    node_peer: NodePeerFactory,
) -> None:
    monitor = await node_peer("monitor", {"name": "node monitor"})
    async with (
        Publisher("py feed", discovery=python_discovery()) as pub,
        Subscriber("py reader", discovery=python_discovery(), status_interval=STATUS) as sub,
    ):
        await sub.wait_connected(1, timeout=FIRST_CONTACT)
        await monitor.wait_for(
            "status",
            timeout=FIRST_CONTACT,
            predicate=lambda e: (
                e["status"] == {"id": sub.id, "nodes": [pub.id], "traffic": {pub.id: {"events": 0}}}
            ),
        )


async def test_python_monitor_sees_node_requester_links(node_peer: NodePeerFactory) -> None:
    async with (
        Monitor("py monitor", discovery=python_discovery()) as mon,
        Responder("py time", discovery=python_discovery()) as rep,
    ):
        rep.on("time", lambda r: 1)
        discovery = {**FAST_DISCOVERY, "statusInterval": ms(200)}
        await node_peer("requester", {"name": "node client", "discovery": discovery})

        def linked(snap: Any) -> bool:
            return any(
                n.name == "node client" and n.connections == (rep.id,) for n in snap.nodes.values()
            )

        snap = await mon.wait_until(linked, timeout=FIRST_CONTACT)
        (client,) = [n for n in snap.nodes.values() if n.name == "node client"]
        assert client.role == "requester"
        assert snap.nodes[rep.id].role == "responder"
        assert (client.id, rep.id) in snap.edges


async def test_node_monitor_sees_a_python_responder_with_host_names(
    node_peer: NodePeerFactory,
) -> None:
    # cote's "Discover req&res" with useHostNames: a cote requester names the
    # node of each link by comparing the name it dialled (socket._host) with
    # the hello's hostName; Node leaves _host empty for an IP address, so a
    # coterie hostName that is an address made it report null.
    host_names = {"COTE_USE_HOST_NAMES": "true"}
    discovery = {**FAST_DISCOVERY, "statusInterval": ms(200)}
    monitor = await node_peer("monitor", {"name": "node monitor"}, env=host_names)
    async with Responder("py time", discovery=python_discovery(use_host_names=True)) as rep:
        rep.on("time", lambda r: 1)
        requester = await node_peer(
            "requester", {"name": "node client", "discovery": discovery}, env=host_names
        )
        reply = await requester.request({"type": "time"}, timeout=FIRST_CONTACT)
        assert (reply["err"], reply["res"]) == (None, 1)
        event = await monitor.wait_for(
            "status", timeout=FIRST_CONTACT, predicate=lambda e: e["status"]["nodes"] != []
        )
    assert event["status"]["nodes"] == [rep.id], monitor.describe()


async def test_node_requester_with_host_names_does_not_connect_twice_after_a_gap(
    node_peer: NodePeerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cote's "Does not try to reconnect twice to the same responder", coterie
    # as the responder: after the gap cote re-adds the node and looks for a
    # link whose socket._host is the hello's hostName before it connects.
    links = LinkCount()
    discovery = python_discovery(use_host_names=True)
    async with Responder("py time", discovery=discovery, observer=links) as rep:
        rep.on("time", lambda r: 1)
        requester = await node_peer(
            "requester", {"name": "node client"}, env={"COTE_USE_HOST_NAMES": "true"}
        )
        assert (await requester.request({"type": "time"}, timeout=FIRST_CONTACT))["res"] == 1
        assert rep.discovery is not None
        # Hellos lost, as cote's own test stubs discovery.hello; the link stays up.
        monkeypatch.setattr(rep.discovery, "hello", lambda: None)
        await requester.wait_for("removed", timeout=FIRST_CONTACT)
        monkeypatch.undo()
        rep.discovery.hello()
        await requester.wait_for_count("added", 2, timeout=FIRST_CONTACT)
        assert (await requester.request({"type": "time"}, timeout=FIRST_CONTACT))["res"] == 1
    assert links.opened == [False], "the Node requester connected twice"
