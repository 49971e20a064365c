"""Publisher and Subscriber over real sockets, host-scope discovery.

Each test gets its own discovery port, so nodes of other tests never pair.
Waits are event driven (``wait_subscribers``, ``wait_connected``, a queue of
deliveries) and every one has a timeout.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from coterie import Publisher, Subscriber
from coterie.protocol.framing import FrameDecoder
from coterie.testing import Mesh
from tests.helpers import MS, DiscoveryFactory, wait_for

#: Bound for what should happen promptly: discovery, a link, a delivery.
SOON = 5_000 * MS


class Inbox:
    """Collects deliveries; ``get`` waits for the next one with a timeout."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def __call__(self, *args: Any) -> None:
        self.queue.put_nowait(args[0] if len(args) == 1 else args)

    async def get(self, timeout: float = 3_000 * MS) -> Any:
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def nothing_more(self, wait: float = 150 * MS) -> None:
        await asyncio.sleep(wait)
        assert self.queue.empty(), f"unexpected delivery: {self.queue.get_nowait()!r}"


async def test_publish_reaches_subscriber(disc: DiscoveryFactory) -> None:
    async with (
        Publisher("pub", broadcasts=["update"], discovery=disc()) as pub,
        Subscriber("sub", subscribes_to=["update"], discovery=disc()) as sub,
    ):
        inbox = Inbox()
        sub.on("update", inbox)
        await pub.wait_subscribers(1, timeout=SOON)
        await sub.wait_connected(1, timeout=SOON)
        assert await pub.publish("update", {"a": 1}) == 1
        assert await pub.publish("update", [1, "two", None]) == 1
        assert await inbox.get() == {"a": 1}
        assert await inbox.get() == [1, "two", None]
        assert pub.advertisement["broadcasts"] == ["update"]
        assert pub.advertisement["axon_type"] == "pub-emitter"
        assert sub.advertisement["subscribesTo"] == ["update"]
        assert sub.advertisement["axon_type"] == "sub-emitter"


async def test_wire_frame_is_exactly_topic_and_data(disc: DiscoveryFactory) -> None:
    # The frame from cote-wire.md: publish('update', {a:1}) in namespace 'rnd'.
    expected = bytes.fromhex(
        "1200000016733a6d6573736167653a3a726e643a3a757064617465000000096a3a7b2261223a317d"
    )
    # A raw TCP client sees what a Node sub-emitter would see.
    async with Publisher("pub", namespace="rnd", discovery=disc()) as pub:
        reader, writer = await asyncio.open_connection("127.0.0.1", pub.port)
        try:
            await pub.wait_subscribers(1, timeout=SOON)
            await pub.publish("update", {"a": 1})
            async with asyncio.timeout(3_000 * MS):
                raw = await reader.readexactly(len(expected))
        finally:
            writer.close()
    assert raw == expected
    assert FrameDecoder().feed(raw) == [["message::rnd::update", {"a": 1}]]


async def test_default_subscribes_to_everything(coterie_mesh: Mesh) -> None:
    async with coterie_mesh.publisher("pub") as pub, coterie_mesh.subscriber("sub") as sub:
        assert sub.advertisement["subscribesTo"] == ["*"]
        a, b, every = Inbox(), Inbox(), Inbox()
        sub.on("a", a)
        sub.on("b", b)
        sub.on("*", every)
        await pub.wait_subscribers(1, timeout=SOON)
        await pub.publish("a", 1)
        await pub.publish("b", 2)
        assert await a.get() == 1
        assert await b.get() == 2
        assert await every.get() == ("a", 1)
        assert await every.get() == ("b", 2)
        await a.nothing_more()


async def test_namespaces_pair_only_with_their_own(coterie_mesh: Mesh) -> None:
    async with (
        coterie_mesh.publisher("pub-a", namespace="a") as pub_a,
        coterie_mesh.publisher("pub-plain") as pub_plain,
        coterie_mesh.subscriber("sub-a", namespace="a") as sub_a,
        coterie_mesh.subscriber("sub-b", namespace="b") as sub_b,
        coterie_mesh.subscriber("sub-plain") as sub_plain,
    ):
        got_a, got_b, got_plain = Inbox(), Inbox(), Inbox()
        sub_a.on("update", got_a)
        sub_b.on("update", got_b)
        sub_plain.on("update", got_plain)
        await pub_a.wait_subscribers(1, timeout=SOON)
        await pub_plain.wait_subscribers(1, timeout=SOON)
        await sub_a.wait_connected(1, timeout=SOON)
        await sub_plain.wait_connected(1, timeout=SOON)
        # Give a wrong pairing the time to happen before counting links.
        await asyncio.sleep(300 * MS)
        assert (pub_a.subscribers, pub_plain.subscribers) == (1, 1)
        assert (sub_a.connected, sub_b.connected, sub_plain.connected) == (1, 0, 1)
        await pub_a.publish("update", "in a")
        await pub_plain.publish("update", "no namespace")
        assert await got_a.get() == "in a"
        assert await got_plain.get() == "no namespace"
        await got_a.nothing_more()
        await got_plain.nothing_more(0)
        await got_b.nothing_more(0)


async def test_keys_keep_meshes_apart(coterie_mesh: Mesh) -> None:
    async with (
        coterie_mesh.publisher("pub-k1", key="k1") as pub1,
        coterie_mesh.publisher("pub-k2", key="k2") as pub2,
        coterie_mesh.subscriber("sub-k1", key="k1") as sub1,
        coterie_mesh.subscriber("sub-k2", key="k2") as sub2,
    ):
        in1, in2 = Inbox(), Inbox()
        sub1.on("tick", in1)
        sub2.on("tick", in2)
        await pub1.wait_subscribers(1, timeout=SOON)
        await pub2.wait_subscribers(1, timeout=SOON)
        await asyncio.sleep(300 * MS)
        assert (pub1.subscribers, pub2.subscribers) == (1, 1)
        await pub1.publish("tick", "one")
        await pub2.publish("tick", "two")
        assert await in1.get() == "one"
        assert await in2.get() == "two"
        await in1.nothing_more()
        await in2.nothing_more(0)


async def test_subscribes_to_filters_with_wildcards(coterie_mesh: Mesh) -> None:
    async with (
        coterie_mesh.publisher("pub", namespace="shop") as pub,
        coterie_mesh.subscriber(
            "sub", namespace="shop", subscribes_to=["user.*", "order.paid"]
        ) as sub,
    ):
        every, users = Inbox(), Inbox()
        sub.on("*", every)
        sub.on("user.*", users)
        await pub.wait_subscribers(1, timeout=SOON)
        for event in ("user.created", "order.created", "order.paid", "user.", "user.deleted"):
            await pub.publish(event, event)
        # "user." does not match: "*" needs at least one character, as in cote.
        assert await every.get() == ("user.created", "user.created")
        assert await every.get() == ("order.paid", "order.paid")
        assert await every.get() == ("user.deleted", "user.deleted")
        assert await users.get() == ("user.created", "user.created")
        assert await users.get() == ("user.deleted", "user.deleted")
        await every.nothing_more()
        await users.nothing_more(0)
        assert sub.received == 3


async def test_handler_patterns_have_eventemitter2_segments(coterie_mesh: Mesh) -> None:
    # cote's subscriber.on: "*" is one "::" segment, "user::*" the family, "**" all.
    async with coterie_mesh.publisher("pub") as pub, coterie_mesh.subscriber("sub") as sub:
        one, family, every = Inbox(), Inbox(), Inbox()
        sub.on("*", one)
        sub.on("user::*", family)
        sub.on("**", every)
        await pub.wait_subscribers(1, timeout=SOON)
        await pub.publish("user::created", 1)
        await pub.publish("tick", 2)
        assert await family.get() == ("user::created", 1)
        assert await every.get() == ("user::created", 1)
        assert await every.get() == ("tick", 2)
        assert await one.get() == ("tick", 2)
        await one.nothing_more()
        await family.nothing_more(0)


async def test_sync_and_async_handlers(disc: DiscoveryFactory) -> None:
    async with (
        Publisher("pub", discovery=disc()) as pub,
        Subscriber("sub", discovery=disc()) as sub,
    ):
        plain, awaited = Inbox(), Inbox()

        @sub.on("job")
        async def slow(data: Any) -> None:
            await asyncio.sleep(10 * MS)
            awaited(("async", data))

        sub.on("job", lambda data: plain(("sync", data)))

        def broken(data: Any) -> None:
            raise RuntimeError("handler bug")

        sub.on("job", broken)  # its failure is logged, others still run
        await pub.wait_subscribers(1, timeout=SOON)
        await pub.publish("job", 7)
        await pub.publish("job", 8)
        assert await plain.get() == ("sync", 7)
        assert await plain.get() == ("sync", 8)
        assert {await awaited.get(), await awaited.get()} == {("async", 7), ("async", 8)}


async def test_off_removes_handlers(disc: DiscoveryFactory) -> None:
    async with (
        Publisher("pub", discovery=disc()) as pub,
        Subscriber("sub", discovery=disc()) as sub,
    ):
        kept, removed = Inbox(), Inbox()
        sub.on("e", kept)
        sub.on("e", removed)
        sub.off("e", removed)
        await pub.wait_subscribers(1, timeout=SOON)
        await pub.publish("e", 1)
        assert await kept.get() == 1
        await removed.nothing_more()


async def test_late_subscriber_gets_only_later_events(disc: DiscoveryFactory) -> None:
    async with Publisher("pub", discovery=disc()) as pub:
        # No subscriber: a no-op, as in cote; nothing is queued for later.
        assert await pub.publish("news", "early") == 0
        async with Subscriber("late", discovery=disc()) as sub:
            inbox = Inbox()
            sub.on("news", inbox)
            await pub.wait_subscribers(1, timeout=SOON)
            assert await pub.publish("news", "later") == 1
            assert await inbox.get() == "later"
            await inbox.nothing_more()
        assert pub.published == 2


async def test_every_subscriber_and_every_publisher(disc: DiscoveryFactory) -> None:
    async with (
        Publisher("pub-1", discovery=disc()) as pub1,
        Publisher("pub-2", discovery=disc()) as pub2,
        Subscriber("sub-1", discovery=disc()) as sub1,
        Subscriber("sub-2", discovery=disc()) as sub2,
    ):
        in1, in2 = Inbox(), Inbox()
        sub1.on("*", in1)
        sub2.on("*", in2)
        await pub1.wait_subscribers(2, timeout=SOON)
        await pub2.wait_subscribers(2, timeout=SOON)
        await pub1.publish("from", 1)
        await pub2.publish("from", 2)
        for inbox in (in1, in2):
            assert sorted([await inbox.get(), await inbox.get()]) == [("from", 1), ("from", 2)]
            await inbox.nothing_more(50 * MS)


async def test_dropped_link_is_reestablished(disc: DiscoveryFactory) -> None:
    async with (
        Publisher("pub", discovery=disc()) as pub,
        Subscriber("sub", discovery=disc()) as sub,
    ):
        inbox = Inbox()
        sub.on("e", inbox)
        await pub.wait_subscribers(1, timeout=SOON)
        (first,) = pub.links
        first.abort()  # cut the TCP link; both nodes stay alive
        await wait_for(
            lambda: pub.links and first not in pub.links, what="the subscriber linked again"
        )
        (second,) = pub.links
        assert second is not first and first.closed
        await pub.publish("e", "after reconnect")
        assert await inbox.get() == "after reconnect"


async def test_discovery_drop_keeps_a_live_link_without_duplicates(disc: DiscoveryFactory) -> None:
    async with (
        Publisher("pub", discovery=disc()) as pub,
        Subscriber("sub", discovery=disc()) as sub,
    ):
        inbox = Inbox()
        sub.on("e", inbox)
        await pub.wait_subscribers(1, timeout=SOON)
        await sub.wait_connected(1, timeout=SOON)
        (node,) = sub.peers
        events: asyncio.Queue[str] = asyncio.Queue()
        sub.on_node(lambda event, peer: events.put_nowait(event) if peer.id == node.id else None)
        # Discovery loses the publisher (as after missed hellos) ...
        assert sub.discovery is not None
        sub.discovery.forget(node.id)
        assert events.get_nowait() == "removed" and sub.peers == []
        await pub.publish("e", "while unlisted")
        assert await inbox.get() == "while unlisted"
        # ... and its next hello brings it back.
        async with asyncio.timeout(SOON):
            assert await events.get() == "added"
        await asyncio.sleep(200 * MS)  # time for a wrong second link to form
        assert (sub.connected, pub.subscribers) == (1, 1)
        await pub.publish("e", "once")
        assert await inbox.get() == "once"
        await inbox.nothing_more()


async def test_slow_subscriber_is_bounded(disc: DiscoveryFactory) -> None:
    limit = 256 * 1024
    async with Publisher("pub", max_buffer=limit, discovery=disc()) as pub:
        # A subscriber that never reads, with a small receive buffer.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", pub.port))
        try:
            await pub.wait_subscribers(1, timeout=SOON)
            (link,) = pub.links
            assert link.transport is not None
            payload = "x" * 32 * 1024
            for _ in range(2000):
                await pub.publish("big", payload)
                await asyncio.sleep(0)  # let each batch go out
                assert link.transport.get_write_buffer_size() <= limit
                if pub.dropped:
                    break
            assert pub.dropped > 0
            assert link.transport.get_write_buffer_size() <= limit
        finally:
            sock.close()


async def test_bad_input_is_rejected(disc: DiscoveryFactory) -> None:
    with pytest.raises(TypeError):
        Subscriber("sub", subscribes_to="update")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Publisher("pub", broadcasts="update")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Publisher("pub", max_buffer=0)
    pub = Publisher("pub", discovery=disc())
    with pytest.raises(RuntimeError):
        await pub.publish("e", 1)
    async with pub:
        with pytest.raises(TypeError):
            await pub.publish("", 1)
        with pytest.raises(TypeError):
            await pub.publish("e", object())
    sub = Subscriber("sub", discovery=disc())
    with pytest.raises(TypeError):
        sub.on("e", "not callable")  # type: ignore[call-overload]
