"""Fuzz: AMP frames through ``FrameDecoder.feed``, cut anywhere.

Every TCP link's bytes go through the decoder before anything else looks at
them. The properties:

- arbitrary bytes, however cut, give lists of arguments and
  :class:`~coterie.protocol.framing.DroppedFrame`\\ s, or
  :class:`~coterie.errors.ProtocolError` once the stream is not AMP (then
  every later feed raises it and nothing stays buffered); never another
  exception;
- the bytes held between feeds never exceed the frame limit plus a length
  prefix's worth: an oversized frame is skipped as it streams, not buffered;
- a stream of frames, some oversized or undecodable, decodes to exactly what
  a frame-by-frame model says, wherever it is cut.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import event, example, given
from hypothesis import strategies as st

from coterie.errors import ProtocolError
from coterie.protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    DroppedFrame,
    FrameDecoder,
    encode_frame,
    frame_length,
)
from tests.fuzz import exact_scalars, fuzz_settings, json_trees

#: An AMP length prefix: the most a decoder holds beyond a frame's own bytes.
PREFIX = 4

json_values = json_trees(exact_scalars(), width=3, key_size=8, leaves=8)
# Raw buffers travel untagged: one starting with an axon tag reads back as that type.
raw_buffers = st.binary(max_size=60).filter(lambda b: b[:2] not in (b"s:", b"j:"))
good_args = st.lists(json_values | raw_buffers, max_size=5)


def _undecodable(raw: bytes) -> bool:
    try:
        if raw[:2] == b"j:":
            orjson.loads(raw[2:])
        elif raw[:2] == b"s:":
            raw[2:].decode()
        else:
            return False
    except ValueError:
        return True
    return False


#: Arguments that frame fine but cannot be decoded: bad JSON, bad UTF-8.
bad_arg = st.binary(max_size=20).map(lambda b: b"j:" + b).filter(_undecodable) | st.builds(
    lambda head, bad, tail: b"s:" + head + bad + tail,
    st.binary(max_size=8),
    st.sampled_from([b"\xff", b"\xc0", b"\xed\xa0\x80", b"\xe2\x82"]),
    st.text(st.characters(max_codepoint=0x7F), max_size=8).map(str.encode),
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    """One encoded frame and what it should decode to (a DroppedFrame is judged later)."""
    args = draw(good_args)
    corrupt: bool = draw(st.booleans())
    if args and corrupt:
        args[draw(st.integers(0, len(args) - 1))] = draw(bad_arg)
        return encode_frame(args), "undecodable"
    return encode_frame(args), args


@st.composite
def cuts(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """``stream`` cut into chunks at arbitrary points (single bytes included)."""
    points = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=24)))
    chunks, start = [], 0
    for point in [*points, len(stream)]:
        chunks.append(stream[start:point])
        start = point
    return chunks


@st.composite
def mutated(draw: st.DrawFn, stream: bytes) -> bytes:
    out = bytearray(stream)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if kind == "flip" and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 6))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=6))
        else:  # a plausible but wrong length prefix
            out[at:at] = frame_length(draw(st.integers(0, 2**32 - 1)))
    return bytes(out)


@st.composite
def hostile_streams(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "frames", "mutated", "versioned"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    stream = b"".join(frame for frame, _ in draw(st.lists(frames(), max_size=5)))
    if kind == "frames":
        return stream
    if kind == "versioned":  # only AMP v1 meta bytes, arbitrary lengths and bodies
        parts = []
        for _ in range(draw(st.integers(1, 4))):
            argc = draw(st.integers(0, 15))
            parts.append(bytes([0x10 | argc]))
            for _ in range(argc):
                length = draw(st.integers(0, 80) | st.integers(0, 2**32 - 1))
                parts.append(frame_length(length) + draw(st.binary(max_size=min(length, 80))))
        return b"".join(parts)
    return draw(mutated(stream))


def feed_all(
    decoder: FrameDecoder, chunks: list[bytes], limit: int = DEFAULT_MAX_FRAME_SIZE
) -> tuple[list[Any], bool]:
    """Feed every chunk, checking the invariants; the items and whether the stream broke.

    ``limit`` is the ``max_frame_size`` the decoder was made with.
    """
    items: list[Any] = []
    for chunk in chunks:
        try:
            got = decoder.feed(chunk)
        except ProtocolError:
            assert decoder.broken is not None
            assert decoder.buffered == 0
            # Broken for good: the next feed raises the same error.
            try:
                decoder.feed(b"\x11")
            except ProtocolError as again:
                assert again is decoder.broken
            else:
                raise AssertionError("a broken decoder accepted more bytes") from None
            event("stream broken")
            return items, True
        for item in got:
            assert isinstance(item, list | DroppedFrame), item
            if isinstance(item, DroppedFrame):
                assert item.size >= 1 and item.reason
                event("dropped: " + observed(item)[2])
            else:
                assert 1 <= len(item) <= 15
        items.extend(got)
        assert decoder.buffered <= limit + PREFIX - 1, (decoder.buffered, limit)
    return items, decoder.broken is not None


@fuzz_settings(ci=200)
@given(hostile_streams(), st.data(), st.sampled_from([5, 16, 64, 1024, 16 * 1024 * 1024]))
@example(b"\x00", None, 5)
@example(b"\x1f" + b"\xff" * 60, None, 5)
@example(b"\x11\x00\x00\x00\x01", None, 5)
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(
    stream: bytes, data: st.DataObject | None, limit: int
) -> None:
    chunks = [stream] if data is None else data.draw(cuts(stream), label="chunks")
    feed_all(FrameDecoder(limit), chunks, limit)


def expected(frame: bytes, args: Any, limit: int) -> Any:
    """What the decoder must give for one frame of the stream."""
    if len(frame) > limit:
        return ("dropped", len(frame), "exceeds")
    if args == "undecodable":
        return ("dropped", len(frame), "undecodable")
    if not args:
        return ("dropped", 1, "no arguments")
    return args


def observed(item: Any) -> Any:
    if isinstance(item, DroppedFrame):
        kind = next(k for k in ("exceeds", "undecodable", "no arguments") if k in item.reason)
        return ("dropped", item.size, kind)
    return item


@fuzz_settings(ci=200)
@given(st.lists(frames(), min_size=1, max_size=6), st.integers(5, 200), st.data())
def test_frames_decode_as_the_model_says_wherever_cut(
    encoded: list[tuple[bytes, Any]], limit: int, data: st.DataObject
) -> None:
    stream = b"".join(frame for frame, _ in encoded)
    decoder = FrameDecoder(limit)
    items, broken = feed_all(decoder, data.draw(cuts(stream), label="chunks"), limit)
    assert not broken
    assert [observed(i) for i in items] == [expected(f, a, limit) for f, a in encoded]
    assert decoder.buffered == 0


@fuzz_settings(ci=60)
@given(st.lists(good_args.filter(bool), min_size=1, max_size=6), st.data())
def test_valid_frames_round_trip_byte_by_byte_or_in_one_piece(
    frame_args: list[list[Any]], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(args) for args in frame_args)
    one_by_one = data.draw(st.booleans(), label="byte by byte")
    chunks = [stream[i : i + 1] for i in range(len(stream))] if one_by_one else [stream]
    items, broken = feed_all(FrameDecoder(), chunks)
    assert not broken and items == frame_args
