"""A responder that accepts and never answers (or answers garbage) leaves the rotation.

Real sockets, in one process. The blackhole answers liveness pings, so only
outlier ejection can tell it from a slow responder.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import AsyncIterator

from coterie import Requester, Responder
from coterie.errors import ProtocolError
from coterie.protocol.ejection import EJECT_AFTER
from coterie.protocol.framing import FrameDecoder
from coterie.protocol.liveness import ADVERTISED as LIVENESS
from coterie.protocol.packets import HELLO, PacketCodec, make_packet
from tests.helpers import HOST_SCOPE, MS, DiscoveryFactory

SOON = 5_000 * MS


async def test_a_blackhole_beside_a_real_responder_costs_a_few_attempts(
    disc: DiscoveryFactory,
) -> None:
    forever = asyncio.Event()
    reached = 0
    async with Responder("real", discovery=disc()) as real:
        real.on("work", lambda req: "real")
        async with Requester("client", discovery=disc(), timeout=10) as req:
            await req.wait_connected(1, timeout=SOON)
            for _ in range(5):  # samples for the adaptive attempt bound
                await req.send({"type": "work"})
            async with Responder("blackhole", discovery=disc()) as hole:

                @hole.on("work")
                async def never(req: dict[str, object]) -> str:
                    nonlocal reached
                    reached += 1
                    await forever.wait()
                    return "never"

                await req.wait_connected(2, timeout=SOON)
                answers: collections.Counter[str] = collections.Counter()

                async def one() -> None:
                    answers[await req.send({"type": "work"})] += 1

                await asyncio.wait_for(asyncio.gather(*(one() for _ in range(200))), 10)
                assert answers == {"real": 200}
                assert req.stats().ejections == 1
                assert req.stats().ejected == (hole.id,)
                # Round robin put about half of the first burst there; after
                # the ejection nothing more but (at most) one probe.
                assert 0 < reached <= 101
                forever.set()


@contextlib.asynccontextmanager
async def garbage_responder(discovery_port: int) -> AsyncIterator[list[int]]:
    """A hostile responder on a real socket: it answers every frame with one that is not JSON.

    It announces itself as cote does (a hello on the discovery port every 100 ms)
    and yields a one-item list: how many garbage frames it has sent.
    """
    sent = [0]

    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        with contextlib.suppress(ConnectionError, ProtocolError):
            while data := await reader.read(65536):
                for _ in decoder.feed(data):
                    sent[0] += 1
                    writer.write(b"\x11\x00\x00\x00\x05j:{{{")  # an argument that is not JSON
        writer.close()

    server = await asyncio.start_server(garble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # It claims to answer pings, as a coterie responder does.
    advertisement = {"type": "service", "name": "garbage", "key": "$$", "axon_type": "rep",
                     "port": port, LIVENESS[0]: LIVENESS[1]}  # fmt: skip
    data = {"isMaster": False, "isMasterEligible": True, "weight": -0.1,
            "advertisement": advertisement}  # fmt: skip
    hello = PacketCodec().encode(make_packet(HELLO, "garbage-pid", "garbage", "garbage", data))

    async def announce() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind(("127.0.0.1", 0))
            while True:
                sock.sendto(hello, (HOST_SCOPE, discovery_port))
                await asyncio.sleep(100 * MS)

    announcing = asyncio.create_task(announce())
    try:
        yield sent
    finally:
        announcing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcing
        server.close()
        await server.wait_closed()


async def test_garbage_frames_eject_a_responder(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Responder("real", discovery=disc()) as real, garbage_responder(disc_port) as sent:
        real.on("work", lambda req: "real")
        async with Requester("client", discovery=disc(), timeout=10) as req:
            await req.wait_connected(2, timeout=SOON)
            results = await asyncio.wait_for(
                asyncio.gather(*(req.send({"type": "work"}) for _ in range(50))), 10
            )
            assert set(results) == {"real"}
            assert req.stats().ejections == 1
            assert sent[0] >= EJECT_AFTER
