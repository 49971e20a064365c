"""A request that finds no responder says why: the error and one WARNING name what is seen.

Each mistake runs on coterie.testing's in-process mesh and over real sockets
(host scope, the tests' namespace); TLS needs real sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from coterie import Requester, RequestTimeoutError, Responder
from coterie.testing import Mesh
from tests.helpers import MS, DiscoveryFactory, wait_for

SOON = 300 * MS
Make = Callable[..., Any]

MISTAKES = [
    (
        {"namespace": "payment"},
        {"namespace": "payments"},
        "a responder named 'validation service' is on the mesh in namespace 'payment';"
        " this requester is in 'payments'",
    ),
    (
        {"key": "cards"},
        {"key": "card"},
        "a responder named 'validation service' is on the mesh with key 'cards';"
        " this requester has key 'card'",
    ),
    (
        {"environment": "prod"},
        {"environment": "staging"},
        "a responder named 'validation service' is on the mesh in environment 'prod';"
        " this requester is in 'staging'",
    ),
]


@pytest.fixture(params=["memory", "sockets"])
def make(request: pytest.FixtureRequest, coterie_mesh: Mesh, disc: DiscoveryFactory) -> Make:
    if request.param == "memory":
        return coterie_mesh.add

    def on_sockets(kind: type[Any], name: str, **kwargs: Any) -> Any:
        return kind(name, discovery=disc(), **kwargs)

    return on_sockets


async def heard(req: Requester) -> None:
    """Until the requester's discovery knows the other node (pairing or not)."""
    await wait_for(lambda: req.discovery is not None and len(req.discovery.nodes) >= 1)


async def expect_timeout(req: Requester, request_type: str = "validate") -> str:
    with pytest.raises(RequestTimeoutError) as info:
        await req.send({"type": request_type}, timeout=SOON)
    return str(info.value)


@pytest.mark.parametrize(("theirs", "mine", "why"), MISTAKES)
async def test_a_mismatch_is_named_in_the_error_and_one_warning(
    make: Make,
    theirs: dict[str, Any],
    mine: dict[str, Any],
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie.requester")
    rep = make(Responder, "validation service", **theirs)
    rep.on("validate", lambda req: True)
    req = make(Requester, "payment", **mine)
    async with rep, req:
        await heard(req)
        first = await expect_timeout(req)
        second = await expect_timeout(req)
    assert first.endswith(f"timed out waiting for a responder: {why}"), first
    assert second.endswith(why)
    said = [r.getMessage() for r in caplog.records if r.name == "coterie.requester"]
    assert said == [f"{req!r}: requests of type 'validate' wait: {why}"]


async def test_a_tls_responder_seen_by_a_plaintext_requester(
    disc: DiscoveryFactory,
) -> None:
    rep = Responder("vault", secret="s3cret", discovery=disc())
    rep.on("open", lambda req: True)
    async with rep, Requester("client", discovery=disc()) as req:
        await heard(req)
        error = await expect_timeout(req, "open")
    assert error.endswith(
        "a responder named 'vault' is on the mesh with mutual TLS on its links;"
        " this requester is plaintext (give it tls= or secret=)"
    )


async def test_a_plaintext_responder_seen_by_a_tls_requester(disc: DiscoveryFactory) -> None:
    rep = Responder("vault", discovery=disc())
    rep.on("open", lambda req: True)
    async with rep, Requester("client", secret="s3cret", discovery=disc()) as req:
        await heard(req)
        error = await expect_timeout(req, "open")
    assert error.endswith(
        "a responder named 'vault' is on the mesh without TLS on its links;"
        " this requester runs mutual TLS, so they cannot link"
    )


async def test_nothing_on_the_mesh_names_the_scope(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Requester("lonely", discovery=disc()) as req:
        error = await expect_timeout(req)
    assert error.endswith(
        f"nothing at all is heard on the mesh (broadcast 127.255.255.255, port {disc_port})"
    )


async def test_a_pairing_responder_that_serves_the_type_says_nothing_more(
    make: Make,
) -> None:
    # It is known but the request still timed out (e.g. not linked yet): no blame.
    rep = make(Responder, "validation service")
    rep.on("validate", lambda req: True)
    req = make(Requester, "payment")
    async with rep, req:
        await heard(req)
        assert req.why_waiting("validate") is None
        assert "no responder serves 'other'" in await expect_timeout(req, "other")
