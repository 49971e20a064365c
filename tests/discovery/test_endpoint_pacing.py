"""A busy discovery socket is read on the one timer every ``pace``, and handed back when quiet.

Real UDP sockets on loopback; the endpoint's receivers count what arrives.
"""

from __future__ import annotations

import asyncio
import socket

from coterie.discovery.transports import _Endpoint
from tests.helpers import MS, wait_for

PACE = 50 * MS


async def test_a_busy_socket_rests_on_the_timer_then_returns_to_its_reader() -> None:
    endpoint = _Endpoint("pacing-test", pace=PACE)
    got: list[bytes] = []
    endpoint.receivers.append(lambda data, source: got.append(data))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    address = sock.getsockname()
    endpoint.add(sock)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        try:
            sender.sendto(b"one", address)
            await wait_for(lambda: len(got) == 1, 2_000 * MS)
            sender.sendto(b"two", address)  # a wake-up within pace: the socket rests
            await wait_for(lambda: len(got) == 2, 2_000 * MS)
            sender.sendto(b"three", address)  # read by the timer, not the reader
            await wait_for(lambda: got == [b"one", b"two", b"three"], 2_000 * MS)
            await asyncio.sleep(3 * PACE)  # a poll finds nothing: back to the reader
            sender.sendto(b"four", address)
            await wait_for(lambda: len(got) == 4, 2_000 * MS)
        finally:
            endpoint.close()
