"""A handler that raises RemoteError(value) sends that value as the error, as cote's cb(value)."""

from __future__ import annotations

from typing import Any

import pytest

from coterie import RemoteError, Requester, Responder
from coterie.testing import call
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS


def _raise(payload: Any) -> Any:
    def handler(request: dict[str, Any]) -> Any:
        raise RemoteError(payload)

    return handler


async def _async_raise(request: dict[str, Any]) -> Any:
    raise RemoteError(request["payload"])


@pytest.mark.parametrize(
    ("payload", "arrives"),
    [
        ("failed the Luhn check", "failed the Luhn check"),
        ({"code": 7, "why": "no"}, {"code": 7, "why": "no"}),
        (["a", 1], ["a", 1]),
        # A falsy error would read as success on the wire: the usual object instead.
        ("", {"message": "RemoteError", "name": "RemoteError"}),
        (None, {"message": "None", "name": "RemoteError"}),
    ],
)
async def test_the_payload_travels_as_it_is(
    disc: DiscoveryFactory, payload: Any, arrives: Any
) -> None:
    async with Responder("refuser", discovery=disc()) as rep:
        rep.on("sync", _raise(payload))
        rep.on("async", _async_raise)
        async with Requester("client", discovery=disc()) as req:
            await req.wait_connected(1, timeout=SOON)
            for kind in ("sync", "async"):
                with pytest.raises(RemoteError) as info:
                    await req.send({"type": kind, "payload": payload}, timeout=SOON)
                assert info.value.payload == arrives, kind


async def test_other_exceptions_still_travel_as_message_and_name(disc: DiscoveryFactory) -> None:
    async with Responder("refuser", discovery=disc()) as rep:

        @rep.on("boom")
        def boom(request: dict[str, Any]) -> None:
            raise ValueError("bad card")

        async with Requester("client", discovery=disc()) as req:
            await req.wait_connected(1, timeout=SOON)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "boom"}, timeout=SOON)
    assert info.value.payload == {"message": "bad card", "name": "ValueError"}


async def test_coterie_testing_call_sends_the_payload_alike() -> None:
    rep = Responder("refuser")
    rep.on("sync", _raise("failed the Luhn check"))
    rep.on("async", _async_raise)
    with pytest.raises(RemoteError) as info:
        await call(rep, {"type": "sync"})
    assert info.value.payload == "failed the Luhn check"
    with pytest.raises(RemoteError) as info:
        await call(rep, {"type": "async", "payload": {"code": 7}})
    assert info.value.payload == {"code": 7}


async def test_the_caller_sees_the_remote_exception_name(disc: DiscoveryFactory) -> None:
    async with Responder("payments", discovery=disc()) as rep:

        @rep.on("pay")
        def pay(request: dict[str, Any]) -> None:
            request["cardno"]  # the classic mistake: a missing field

        async with Requester("client", discovery=disc()) as req:
            await req.wait_connected(1, timeout=SOON)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "pay"}, timeout=SOON)
    assert str(info.value) == "KeyError: 'cardno'"
    assert (info.value.name, info.value.message) == ("KeyError", "'cardno'")


def test_remote_error_reads_message_and_name() -> None:
    err = RemoteError({"message": "bad card", "name": "ValueError"})
    assert (err.message, err.name, str(err)) == ("bad card", "ValueError", "ValueError: bad card")
    # A JS Error object arrives as {}; a plain string error arrives as is.
    assert RemoteError({}).name is None
    assert str(RemoteError({"message": "RemoteError", "name": "RemoteError"})) == "RemoteError"
    plain = RemoteError("nope")
    assert (plain.message, plain.name, plain.payload) == ("nope", None, "nope")
