"""The message layer: request frames, reserved fields, error payloads, the size rule."""

from __future__ import annotations

from typing import Any, cast

import pytest

from coterie.errors import FrameTooLargeError, RemoteError, Retryable
from coterie.protocol.framing import FrameDecoder, encode_frame
from coterie.protocol.liveness import PING
from coterie.protocol.messages import (
    BAD_FRAME,
    IGNORED_FRAME,
    MAX_PROBLEMS,
    PING_FRAME,
    RESERVED_FIELDS,
    SHORT_FRAME,
    check_size,
    decode_request,
    encode_answer,
    encode_publish,
    encode_refusal,
    encode_reply,
    encode_request,
    error_payload,
    error_value,
    field_path,
    invalid_refusal,
    json_kind,
    no_handler_message,
    split_request,
    split_trace,
    topic_for,
    without,
)


def frames(data: bytes) -> list[list[Any]]:
    decoded = FrameDecoder().feed(data)
    assert all(isinstance(frame, list) for frame in decoded), decoded
    return cast(list[list[Any]], decoded)


# -- decode_request ------------------------------------------------------------------


def test_a_request_object_comes_back_itself() -> None:
    request = {"type": "add", "a": 1}
    assert decode_request([request, "7:1"]) is request
    # More arguments than two: the request first, the id last (axon's shape).
    assert decode_request([request, "extra", "7:1"]) is request


def test_a_dict_subclass_with_a_type_is_a_request() -> None:
    class Ordered(dict[str, Any]):
        pass

    request = Ordered(type="x")
    assert decode_request([request, 1]) is request
    assert decode_request([Ordered(a=1), 1]) is BAD_FRAME


def test_a_ping_is_told_from_a_request() -> None:
    assert decode_request([PING, 3]) is PING_FRAME
    assert decode_request(["coterie:pong", 3]) is IGNORED_FRAME


@pytest.mark.parametrize("first", [{"no": "type"}, {"TYPE": "x"}])
def test_an_object_without_a_type_is_a_bad_frame(first: Any) -> None:
    assert decode_request([first, "7:1"]) is BAD_FRAME


@pytest.mark.parametrize("first", ["text", 5, None, [1, 2], True, b"raw"])
def test_a_request_that_is_no_object_is_ignored_as_cote_does(first: Any) -> None:
    # cote's send('a string') sends it; cote's responder answers nothing.
    assert decode_request([first, "7:1"]) is IGNORED_FRAME


@pytest.mark.parametrize("args", [[], [{"type": "x"}], [PING]])
def test_a_frame_without_an_id_is_short(args: list[Any]) -> None:
    assert decode_request(args) is SHORT_FRAME


def test_the_verdicts_say_what_they_are() -> None:
    kinds = (PING_FRAME.kind, BAD_FRAME.kind, IGNORED_FRAME.kind, SHORT_FRAME.kind)
    assert kinds == ("ping", "bad", "ignored", "short")
    assert "cote" in IGNORED_FRAME.reason
    assert "'type'" in BAD_FRAME.reason
    assert repr(BAD_FRAME) == "<bad frame>"


# -- reserved fields ---------------------------------------------------------------


def test_reserved_fields() -> None:
    assert RESERVED_FIELDS == ("__subset", "__timeout", "__trace")


def test_a_plain_request_is_not_copied() -> None:
    request = {"type": "x", "n": 1}
    payload, subset, timeout = split_request(request)
    assert payload is request
    assert (subset, timeout) == (None, None)


def test_subset_is_taken_out_of_a_copy() -> None:
    request = {"type": "x", "__subset": "green"}
    payload, subset, timeout = split_request(request)
    assert payload == {"type": "x"}
    assert subset == "green"
    assert timeout is None
    assert request == {"type": "x", "__subset": "green"}  # the caller's dict is untouched


@pytest.mark.parametrize(("wire", "seconds"), [(1500, 1.5), (0.5, 0.0005), (1, 0.001)])
def test_timeout_is_read_in_milliseconds_and_stays_in_the_payload(
    wire: float, seconds: float
) -> None:
    request = {"type": "x", "__timeout": wire}
    payload, _, timeout = split_request(request)
    assert timeout == seconds
    assert payload is request and payload["__timeout"] == wire  # cote sends it too


@pytest.mark.parametrize("wire", [0, -5, "100", None, True, [100], float("nan")])
def test_a_timeout_that_is_not_a_positive_number_is_ignored(wire: Any) -> None:
    _, _, timeout = split_request({"type": "x", "__timeout": wire})
    assert timeout is None


def test_subset_and_timeout_together() -> None:
    payload, subset, timeout = split_request({"type": "x", "__subset": "s", "__timeout": 20})
    assert payload == {"type": "x", "__timeout": 20}
    assert (subset, timeout) == ("s", 0.02)


def test_trace_is_split_from_what_the_handler_sees() -> None:
    request = {"type": "x", "__trace": {"traceparent": "00-ab"}, "k": 1}
    seen, carrier = split_trace(request)
    assert seen == {"type": "x", "k": 1}
    assert carrier == {"traceparent": "00-ab"}
    assert "__trace" in request  # a copy: the decoded frame is not changed


def test_without_trace_the_request_is_not_copied() -> None:
    request = {"type": "x"}
    seen, carrier = split_trace(request)
    assert seen is request and carrier is None


def test_without_removes_every_reserved_field_into_a_copy() -> None:
    data = {"type": "x", "__subset": 1, "__timeout": 2, "__trace": 3, "__other": 4}
    assert without(data) == {"type": "x", "__other": 4}
    assert without(data, ("__subset",)) == {"type": "x", "__timeout": 2, "__trace": 3, "__other": 4}
    plain = {"type": "x"}
    copy = without(plain)
    assert copy == plain and copy is not plain


# -- encoding requests and errors ----------------------------------------------------


@pytest.mark.parametrize("body", ["plain text", [1, "two"], None, 7])
def test_a_request_body_that_is_not_an_object_is_framed_like_any_value(body: Any) -> None:
    assert encode_request(body, "1:1") == encode_frame((body, "1:1"))
    assert FrameDecoder().feed(encode_request(body, "1:1")) == [[body, "1:1"]]


def test_an_unserialisable_request_is_a_type_error_naming_the_request() -> None:
    with pytest.raises(TypeError, match="cannot send request as JSON"):
        encode_request({"type": "t", "when": object()}, "1:1")


def test_error_payload_is_what_cote_expects_of_a_thrown_error() -> None:
    assert error_payload(ValueError("bad card")) == {"message": "bad card", "name": "ValueError"}
    # An error without a message still says what it was.
    assert error_payload(KeyboardInterrupt()) == {
        "message": "KeyboardInterrupt",
        "name": "KeyboardInterrupt",
    }


def test_a_retryable_handler_error_carries_code_retryable() -> None:
    assert error_value(Retryable("lock busy")) == {
        "message": "lock busy",
        "name": "Retryable",
        "code": "retryable",
    }
    assert "code" not in error_value(RuntimeError("lock busy"))


def test_a_handler_error_value_is_a_remote_errors_payload_or_message_and_name() -> None:
    assert error_value(ValueError("bad card")) == {"message": "bad card", "name": "ValueError"}
    assert error_value(RemoteError("declined")) == "declined"  # cote's cb("declined")
    assert error_value(RemoteError({"code": 7})) == {"code": 7}
    # A falsy payload would read as success on the wire: message and name instead.
    assert error_value(RemoteError("")) == {"message": "RemoteError", "name": "RemoteError"}
    assert error_value(RemoteError(0))["name"] == "RemoteError"


# -- the size rule -------------------------------------------------------------------


def test_check_size_passes_a_frame_that_fits_exactly() -> None:
    frame = b"x" * 10
    assert check_size(frame, 10, "request") is frame


def test_check_size_names_what_is_too_large() -> None:
    with pytest.raises(FrameTooLargeError, match=r"^event of 11 bytes exceeds max_frame_size=10"):
        check_size(b"x" * 11, 10, "event")


def test_a_request_over_the_limit_is_refused() -> None:
    body = {"type": "x", "pad": "a" * 100}
    frame = encode_request(body, "1:1")
    assert encode_request(body, "1:1", len(frame)) == frame
    with pytest.raises(FrameTooLargeError, match=f"request of {len(frame)} bytes"):
        encode_request(body, "1:1", len(frame) - 1)


def test_a_publish_over_the_limit_is_refused() -> None:
    frame = encode_publish(topic_for("e", None), {"pad": "a" * 100})
    assert frames(frame) == [["message::e", {"pad": "a" * 100}]]
    assert encode_publish("message::e", {"pad": "a" * 100}, len(frame)) == frame
    with pytest.raises(FrameTooLargeError, match=f"event of {len(frame)} bytes"):
        encode_publish("message::e", {"pad": "a" * 100}, len(frame) - 1)


# -- replies that can always be sent -------------------------------------------------


def test_an_answer_that_fits_is_the_plain_reply() -> None:
    assert encode_answer(None, {"ok": 1}, "7:1", 1000) == encode_reply(None, {"ok": 1}, "7:1")
    error = {"message": "m", "name": "E"}
    assert encode_answer(error, None, "7:1", 1000) == encode_reply(error, None, "7:1")


def test_an_answer_over_the_limit_becomes_a_too_large_refusal() -> None:
    reply = encode_reply(None, "a" * 100, "7:1")
    assert encode_answer(None, "a" * 100, "7:1", len(reply)) == reply
    ((error, request_id),) = frames(encode_answer(None, "a" * 100, "7:1", len(reply) - 1))
    assert request_id == "7:1"
    assert error == {
        "message": f"reply of {len(reply)} bytes exceeds max_frame_size={len(reply) - 1}",
        "name": "FrameTooLargeError",
        "code": "too_large",
    }


def test_a_result_that_is_not_json_becomes_a_type_error_reply() -> None:
    ((error, request_id),) = frames(encode_answer(None, {1j}, "7:2", 1000))
    assert request_id == "7:2"
    assert error["name"] == "TypeError"
    assert error["message"].startswith("result could not be sent: ")


def test_a_refusal_frame_carries_the_code_and_the_id() -> None:
    frame = encode_refusal("no_handler", no_handler_message("rep", "add"), "9:9")
    assert frames(frame) == [
        [
            {
                "message": "rep has no handler for request type 'add'",
                "name": "NoHandlerError",
                "code": "no_handler",
            },
            "9:9",
        ]
    ]
    assert frame == encode_frame((frames(frame)[0][0], "9:9"))


# -- typed contracts: the invalid error ---------------------------------------


def test_field_path_names_fields_and_indexes_from_the_root() -> None:
    assert field_path(()) == "$"
    assert field_path(("cardno",)) == "$.cardno"
    assert field_path(("items", 0, "x", 12)) == "$.items[0].x[12]"


def test_json_kind_uses_json_words_and_tells_bool_from_int() -> None:
    values: list[Any] = [{}, [], "s", True, 1, 1.5, None, b"x"]
    kinds = [json_kind(v) for v in values]
    assert kinds == ["object", "array", "str", "bool", "int", "float", "null", "bytes"]


def test_invalid_refusal_names_each_path_and_what_was_expected() -> None:
    assert invalid_refusal([("$.cardno", "expected str, got int")]) == {
        "message": "$.cardno: expected str, got int",
        "name": "ValidationError",
        "code": "invalid",
    }
    two = invalid_refusal([("$.a", "field required"), ("$.b[1]", "expected int, got str")])
    assert two["message"] == "$.a: field required; $.b[1]: expected int, got str"


def test_invalid_refusal_is_bounded_and_never_empty() -> None:
    many = invalid_refusal((f"$.f{n}", "field required") for n in range(MAX_PROBLEMS + 3))
    listed = many["message"].split("; ")
    assert len(listed) == MAX_PROBLEMS + 1
    assert listed[-1] == "and 3 more"
    assert listed[MAX_PROBLEMS - 1] == f"$.f{MAX_PROBLEMS - 1}: field required"
    exactly = invalid_refusal((f"$.f{n}", "x") for n in range(MAX_PROBLEMS))
    assert "more" not in exactly["message"]
    assert invalid_refusal([])["message"] == "$: does not match the contract"
