"""Discovery datagrams: node-discover's JSON packets, optionally encrypted (sans-I/O).

Design: :class:`PacketCodec` turns packet dictionaries into datagram bytes and
back, with encryption when a discovery key is set. It validates what it reads
and raises :class:`~coterie.errors.DecodeError` for anything that is not a
usable packet, so the socket adapter can drop it with one log line.

Packets are ``{"event", "pid", "iid", "hostName", "data"}`` in that order.
``hostName`` is what cote puts there: the host name setting
(``DISCOVERY_HOSTNAME``, else the machine's name), never an address, since
cote tells its links apart by the name it dialled and Node keeps none for an
address.
cote sends only ``hello``; coterie adds ``goodbye`` (a closing node), which
node-discover emits to nobody, so Node peers ignore it.
"""

from __future__ import annotations

from typing import Any

import orjson

from coterie.errors import DecodeError
from coterie.protocol.cipher import DiscoveryCipher

__all__ = ["GOODBYE", "HELLO", "PacketCodec", "make_packet"]

HELLO = "hello"
GOODBYE = "goodbye"


def make_packet(event: str, pid: str, iid: str, host_name: str, data: Any) -> dict[str, Any]:
    """Build a packet with node-discover's field order."""
    return {"event": event, "pid": pid, "iid": iid, "hostName": host_name, "data": data}


class PacketCodec:
    """Encodes and decodes discovery datagrams.

    Args:
        key: Discovery password; ``None`` for plain JSON.
        max_size: Datagrams larger than this are refused.
    """

    def __init__(self, key: str | None = None, max_size: int = 65507) -> None:
        self._cipher = DiscoveryCipher(key) if key else None
        self.max_size = max_size

    @property
    def encrypted(self) -> bool:
        """Whether datagrams are encrypted."""
        return self._cipher is not None

    def encode(self, packet: dict[str, Any]) -> bytes:
        """Serialise (and encrypt) a packet.

        Raises:
            ValueError: When the datagram would exceed ``max_size``.
        """
        data = orjson.dumps(packet)
        if self._cipher is not None:
            data = self._cipher.encrypt(data)
        if len(data) > self.max_size:
            raise ValueError(
                f"discovery datagram of {len(data)} bytes exceeds {self.max_size}: "
                "shrink the advertisement"
            )
        return data

    def decode(self, datagram: bytes) -> dict[str, Any]:
        """Parse (and decrypt) a datagram into a packet.

        Raises:
            DecodeError: When it is oversized, undecryptable, not JSON, or
                lacks the fields every packet has.
        """
        if len(datagram) > self.max_size:
            raise DecodeError(f"datagram of {len(datagram)} bytes is oversized")
        if self._cipher is not None:
            datagram = self._cipher.decrypt(datagram)
        try:
            packet = orjson.loads(datagram)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}") from exc
        if not isinstance(packet, dict):
            raise DecodeError("packet is not a JSON object")
        event, iid, data = packet.get("event"), packet.get("iid"), packet.get("data")
        if not isinstance(event, str) or not isinstance(iid, str) or not iid:
            raise DecodeError("packet lacks a string event or iid")
        if not isinstance(data, dict):
            raise DecodeError("packet lacks a data object")
        if event == HELLO and not isinstance(data.get("advertisement"), dict):
            raise DecodeError("hello lacks an advertisement object")
        return packet
