"""The Sockend's rules, without sockets: shaping a client's event, its refusals, rooms."""

from __future__ import annotations

from typing import Any

import pytest

from coterie.errors import (
    AuthError,
    FrameTooLargeError,
    LinkLostError,
    NotRunningError,
    QueueFullError,
    RequestTimeoutError,
)
from coterie.protocol.sockend import (
    RESERVED_KEYS,
    SOCKETIO_RESERVED,
    Refused,
    failure,
    gone,
    no_handler,
    request_from,
    rooms,
    socketio_namespace,
    split_rooms,
)


def refused(event: Any, args: tuple[Any, ...], max_payload: int = 100) -> tuple[str, str]:
    with pytest.raises(Refused) as caught:
        request_from(event, args, max_payload)
    return caught.value.code, caught.value.message


# -- request_from ------------------------------------------------------------------


def test_the_payload_is_copied_without_the_reserved_keys() -> None:
    data = {"k": "v", "__subset": "s", "__timeout": 1, "__trace": {"t": 1}}
    request = request_from("echo", (data,), 1000)
    assert request == {"k": "v", "__trace": {"t": 1}}
    assert data["__subset"] == "s"  # the client's object is not changed
    assert RESERVED_KEYS == ("__subset", "__timeout")


def test_a_missing_payload_is_an_empty_request_and_extra_arguments_are_ignored() -> None:
    assert request_from("echo", (), 10) == {}
    assert request_from("echo", ({"a": 1}, "extra", 3), 100) == {"a": 1}


def test_the_request_is_a_new_dict_even_without_reserved_keys() -> None:
    data = {"a": 1}
    request = request_from("echo", (data,), 100)
    request["type"] = "echo"
    assert data == {"a": 1}


@pytest.mark.parametrize("event", [None, 5, ["a"], b"echo", {"x": 1}])
def test_an_event_name_must_be_a_string(event: Any) -> None:
    code, message = refused(event, ({},))
    assert code == "bad_request"
    assert message == f"an event name must be a string, got {type(event).__name__}"


@pytest.mark.parametrize("event", sorted(SOCKETIO_RESERVED))
def test_socketio_reserved_events_are_never_forwarded(event: str) -> None:
    assert refused(event, ({},)) == ("no_handler", f"{event!r} is a reserved socket.io event")


@pytest.mark.parametrize(
    ("payload", "kind"), [(None, "null"), ([1], "list"), ("t", "str"), (5, "int"), (True, "bool")]
)
def test_a_payload_must_be_an_object(payload: Any, kind: str) -> None:
    assert refused("echo", (payload,)) == (
        "bad_request",
        f"the payload of 'echo' must be an object, got {kind}",
    )


@pytest.mark.parametrize("payload", [{"x": 2**70}, {"x": {1j}}, {1: "int key"}, {"x": object()}])
def test_a_payload_must_be_json(payload: dict[Any, Any]) -> None:
    code, message = refused("echo", (payload,))
    assert code == "bad_request"
    assert message.startswith("the payload of 'echo' is not JSON: ")


def test_the_payload_limit_counts_bytes_of_json() -> None:
    payload = {"b": "x" * 10}  # {"b":"xxxxxxxxxx"} is 18 bytes
    assert request_from("echo", (payload,), 18) == payload
    assert refused("echo", (payload,), 17) == (
        "too_large",
        "the payload of 'echo' is 18 bytes; the limit is 17",
    )


def test_a_refusal_is_a_sockend_error_with_its_code() -> None:
    assert Refused("gone", "m").payload() == {
        "name": "SockendError",
        "code": "gone",
        "message": "m",
    }


# -- what a client gets when forwarding failed -------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (RequestTimeoutError("x"), "timeout", "no answer to 'add' within 2.5 s"),
        (TimeoutError(), "timeout", "no answer to 'add' within 2.5 s"),
        (QueueFullError("x"), "queue_full", "too many requests are waiting for a responder"),
        (FrameTooLargeError("x"), "too_large", "the request is too large for the mesh"),
        (TypeError("no JSON"), "bad_request", "the request cannot be sent: no JSON"),
        (NotRunningError("x"), "closed", "the gateway's requester is not running"),
        (LinkLostError("cut"), "link_lost", "the request could not be completed: cut"),
        (AuthError("tls"), "failed", "the request could not be completed: tls"),
        (RuntimeError("boom"), "failed", "the request could not be completed: boom"),
    ],
)
def test_a_failure_is_told_in_the_one_vocabulary(
    error: BaseException, code: str, message: str
) -> None:
    refusal = failure(error, "add", 2.5)
    assert (refusal.code, refusal.message) == (code, message)


def test_namespace_refusals() -> None:
    assert (no_handler("add", "/math").code, no_handler("add", "/math").message) == (
        "no_handler",
        "no responder serves 'add' on /math",
    )
    closed = gone("math", "/math", 1.5)
    assert closed.code == "gone"
    assert closed.message == (
        "namespace 'math' (/math) was closed: none of its responders has been seen for 1.5 s"
    )


def test_socketio_namespaces() -> None:
    assert socketio_namespace(None) == "/"
    assert socketio_namespace("") == "/"
    assert socketio_namespace("math") == "/math"


# -- rooms -----------------------------------------------------------------------------


def test_rooms_in_order_once_each() -> None:
    assert rooms(["b", "a", "b"], "a") == ["b", "a"]
    assert rooms("solo", None) == ["solo"]
    assert rooms(("t1", 7), "last") == ["t1", "7", "last"]
    assert rooms(None, None) == []


def test_rooms_skip_what_is_not_a_name() -> None:
    assert rooms([None, True, 1.5, {"r": 1}, ["n"], "ok", 0], False) == ["ok", "0"]


def test_data_without_rooms_goes_to_everyone_as_it_is() -> None:
    data = {"n": 1}
    assert split_rooms(data) == (data, None)
    assert split_rooms(data)[0] is data
    assert split_rooms([1, 2]) == ([1, 2], None)
    assert split_rooms("text") == ("text", None)


def test_rooms_are_taken_out_of_a_copy() -> None:
    data = {"n": 1, "__room": "a", "__rooms": ["b", "a"]}
    out, targets = split_rooms(data)
    assert out == {"n": 1}
    assert targets == ["b", "a"]
    assert "__room" in data  # the published object is not changed


def test_null_rooms_are_removed_and_mean_everyone() -> None:
    assert split_rooms({"n": 1, "__room": None}) == ({"n": 1}, None)
    assert split_rooms({"n": 1, "__rooms": None, "__room": None}) == ({"n": 1}, None)


def test_an_empty_room_list_means_no_one() -> None:
    assert split_rooms({"__rooms": []}) == ({}, [])
    assert split_rooms({"__rooms": [None]}) == ({}, [])
