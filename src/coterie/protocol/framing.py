"""AMP framing, the byte layer under axon (sans-I/O).

Design: like h11, this module never touches a socket. :func:`encode_frame`
turns a list of values into the bytes of one frame, and :class:`FrameDecoder`
takes bytes as they arrive and hands back complete frames. The asyncio link in
:mod:`coterie.transport.link` owns the socket and just shuttles bytes.

A frame is one byte ``0x10 | argc`` (AMP version 1, at most 15 arguments),
then per argument a 4-byte big-endian length and the bytes. axon types each
argument by a prefix: ``s:`` for a UTF-8 string, ``j:`` for JSON, anything
else is a raw binary buffer.

Limits are explicit. A frame larger than ``max_frame_size`` is skipped byte by
byte as it streams in (never buffered) and reported as a :class:`DroppedFrame`,
as is a frame whose arguments fail to decode; the stream stays usable. Only a
byte that cannot start a frame (a wrong version nibble) breaks the stream, and
that raises :class:`~coterie.errors.ProtocolError` so the link closes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from coterie.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DroppedFrame",
    "FrameDecoder",
    "decode_arg",
    "encode_arg",
    "encode_frame",
    "frame_length",
]

#: Default upper bound on one frame, header included: 16 MiB.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

_VERSION = 1
_MAX_ARGS = 15
_LEN = struct.Struct(">I")
_pack_len = _LEN.pack
_unpack_len = _LEN.unpack_from
_dumps = orjson.dumps
_loads = orjson.loads


def encode_arg(value: Any) -> bytes:
    """Encode one argument the way axon's amp-message does.

    Args:
        value: A ``str`` (sent as ``s:``), ``bytes``-like (sent raw) or any
            JSON-serialisable value (sent as ``j:``; ``None`` becomes ``null``).

    Returns:
        The argument's bytes, without the length prefix.

    Raises:
        TypeError: When the value cannot be serialised as JSON.
    """
    if type(value) is str:
        return b"s:" + value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    try:
        return b"j:" + _dumps(value)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"cannot send {type(value).__name__} value as JSON: {exc}") from exc


def decode_arg(raw: bytes) -> Any:
    """Decode one argument: ``j:`` JSON, ``s:`` string, else raw bytes.

    Raises:
        ValueError: When a ``j:`` argument is not valid JSON or an ``s:`` one
            is not valid UTF-8.
    """
    if raw[:2] == b"j:":
        return _loads(raw[2:])
    if raw[:2] == b"s:":
        return raw[2:].decode()
    return raw


def frame_length(length: int) -> bytes:
    """The 4-byte big-endian length prefix of an argument."""
    return _pack_len(length)


def encode_frame(args: list[Any] | tuple[Any, ...]) -> bytes:
    """Encode values as one AMP frame.

    Raises:
        ValueError: With more than 15 arguments.
        TypeError: When an argument cannot be serialised.
    """
    argc = len(args)
    if argc > _MAX_ARGS:
        raise ValueError(f"an AMP frame holds at most {_MAX_ARGS} arguments, got {argc}")
    parts = [bytes(((_VERSION << 4) | argc,))]
    for value in args:
        data = encode_arg(value)
        parts.append(_pack_len(len(data)))
        parts.append(data)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class DroppedFrame:
    """A frame that was read off the stream but could not be used.

    Attributes:
        reason: Why it was dropped, for a log line.
        size: How many bytes it took on the stream.
    """

    reason: str
    size: int


class FrameDecoder:
    """Incremental AMP decoder: bytes in, frames out.

    Each item :meth:`feed` returns is either a ``list`` of decoded arguments
    or a :class:`DroppedFrame`.

    Args:
        max_frame_size: Frames larger than this many bytes are skipped.
    """

    __slots__ = ("_buf", "_error", "_max", "_skip_args", "_skip_bytes", "_skip_size", "broken")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 5:
            raise ValueError("max_frame_size must be at least 5 bytes")
        self._buf = bytearray()
        self._max = max_frame_size
        # Skip state for an oversized frame: bytes left in the current
        # argument, arguments left after it, and the bytes skipped so far.
        self._skip_bytes = -1
        self._skip_args = 0
        self._skip_size = 0
        #: Set once the stream proved not to be AMP; every later feed raises it.
        self.broken: ProtocolError | None = None
        self._error: Exception | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[list[Any] | DroppedFrame]:
        """Add received bytes and return every frame they complete.

        Frames completed before a byte that breaks the stream are still
        returned; :attr:`broken` is then set and the next call raises.

        Raises:
            ProtocolError: When the stream is not AMP version 1.
        """
        if self.broken is not None:
            raise self.broken
        held = self._buf
        if held:
            held += data
            buf: bytes | bytearray = held
        else:
            buf = data  # nothing held: parse the chunk in place, no copy
        out: list[list[Any] | DroppedFrame] = []
        end = len(buf)
        pos = 0
        if self._skip_bytes < 0:
            pos = self._fast(buf, 0, end, out)
        if pos < end:
            pos = self._general(buf, pos, end, out)
        if buf is held:
            if pos:
                del held[:pos]
        elif pos < end:
            self._buf = bytearray(buf[pos:])
        return out

    def _fast(
        self, buf: bytes | bytearray, pos: int, end: int, out: list[list[Any] | DroppedFrame]
    ) -> int:
        """Decode well-formed frames from ``pos`` in one pass; stop at anything unusual.

        Returns the position of the first frame it did not take: an
        incomplete one, or one :meth:`_general` must judge (bad version,
        oversized, undecodable; the decoding error is kept in ``_error``).
        """
        maximum = self._max
        append_frame = out.append
        with memoryview(buf) as view:
            while pos < end:
                meta = buf[pos]
                if meta >> 4 != _VERSION or not meta & 0x0F:
                    return pos
                off = pos + 1
                args: list[Any] = []
                append = args.append
                try:
                    for _ in range(meta & 0x0F):
                        if off + 4 > end:
                            return pos
                        (length,) = _unpack_len(buf, off)
                        start = off + 4
                        off = start + length
                        if off - pos > maximum:
                            return pos
                        if off > end:
                            return pos
                        if length >= 2 and buf[start + 1] == 0x3A:  # "x:" tag
                            tag = buf[start]
                            if tag == 0x6A:  # "j:" JSON, parsed straight from the buffer
                                append(_loads(view[start + 2 : off]))
                                continue
                            if tag == 0x73:  # "s:" string
                                append(str(view[start + 2 : off], "utf-8"))
                                continue
                        append(bytes(view[start:off]))
                except (ValueError, UnicodeDecodeError) as exc:
                    self._error = exc
                    return pos
                append_frame(args)
                pos = off
        return pos

    def _general(
        self, buf: bytes | bytearray, pos: int, end: int, out: list[list[Any] | DroppedFrame]
    ) -> int:
        """The careful path: skips oversized frames, reports bad ones."""
        maximum = self._max
        while True:
            if self._skip_bytes >= 0:
                pos = self._skip(buf, pos, end, out)
                if self._skip_bytes >= 0:
                    break
                continue
            if pos >= end:
                break
            meta = buf[pos]
            if meta >> 4 != _VERSION:
                self._buf = bytearray()
                self.broken = ProtocolError(f"not an AMP v1 frame (first byte 0x{meta:02x})")
                if out:
                    return end  # deliver the good frames; the next feed raises
                raise self.broken
            argc = meta & 0x0F
            off = pos + 1
            size = 1
            for index in range(argc):
                if off + 4 > end:
                    break
                (length,) = _unpack_len(buf, off)
                size += 4 + length
                if size > maximum:
                    # Too large: skip the rest of this frame as it streams in.
                    self._skip_bytes = length
                    self._skip_args = argc - index - 1
                    self._skip_size = off + 4 - pos
                    pos = off + 4
                    break
                off += 4 + length
                if off > end:
                    break
            else:
                if not argc:
                    out.append(DroppedFrame("frame with no arguments", size))
                elif self._fast(buf, pos, off, out) == pos:
                    out.append(DroppedFrame(f"undecodable argument: {self._error}", size))
                pos = off
                continue
            if self._skip_bytes >= 0:
                continue
            break  # incomplete frame: wait for more bytes
        return pos

    def _skip(
        self, buf: bytes | bytearray, pos: int, end: int, out: list[list[Any] | DroppedFrame]
    ) -> int:
        """Advance through an oversized frame; returns the new position."""
        while True:
            take = min(self._skip_bytes, end - pos)
            pos += take
            self._skip_bytes -= take
            self._skip_size += take
            if self._skip_bytes:
                return pos
            if not self._skip_args:
                out.append(
                    DroppedFrame(
                        f"frame of {self._skip_size} bytes exceeds the limit of {self._max}",
                        self._skip_size,
                    )
                )
                self._skip_bytes = -1
                return pos
            if pos + 4 > end:
                return pos  # wait for the next length prefix
            (self._skip_bytes,) = _unpack_len(buf, pos)
            pos += 4
            self._skip_size += 4
            self._skip_args -= 1
