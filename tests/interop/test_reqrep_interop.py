"""Requests and replies between coterie and real Node cote 1.2.0 peers.

Every test runs inside the session's private network namespace, where Node
cote's 255.255.255.255 hellos and coterie's 127.255.255.255 hellos both stay
on loopback and reach each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from coterie import DiscoveryOptions, RemoteError, Requester, Responder
from tests.helpers import MS
from tests.interop.conftest import NodePeerFactory
from tests.interop.nodepeer import FAST_DISCOVERY, NodePeer, python_discovery

FIRST_CONTACT = 5_000 * MS  # allowed for discovery plus the first round trip


@dataclass(frozen=True)
class Variant:
    """One way of scoping a pair of components; both sides get the same."""

    id: str
    namespace: str | None = None
    key: str | None = None
    environment: str | None = None
    discovery_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def python_discovery(self) -> DiscoveryOptions:
        return python_discovery(key=self.discovery_key)

    def python_kwargs(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "key": self.key,
            "discovery": self.python_discovery(),
        }

    def node_config(self, name: str, **more: Any) -> dict[str, Any]:
        discovery: dict[str, Any] = dict(FAST_DISCOVERY)
        if self.discovery_key:
            discovery["key"] = self.discovery_key
        config: dict[str, Any] = {"name": name, "discovery": discovery, **more}
        if self.namespace is not None:
            config["namespace"] = self.namespace
        if self.key is not None:
            config["key"] = self.key
        if self.environment is not None:
            config["environment"] = self.environment
        return config

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Set COTE_ENV for the Python side, before any component exists."""
        if self.environment is None:
            monkeypatch.delenv("COTE_ENV", raising=False)
        else:
            monkeypatch.setenv("COTE_ENV", self.environment)


VARIANTS = [
    Variant("plain"),
    Variant("namespace", namespace="payments"),
    Variant("key", key="cards"),
    Variant("environment", environment="staging"),
    Variant("encrypted-discovery", discovery_key="secret"),
]


@pytest.fixture(autouse=True)
def _no_stray_cote_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COTE_ENV", raising=False)


def recording_handler(
    seen: list[dict[str, Any]], by: str = "python"
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def handler(req: dict[str, Any]) -> dict[str, Any]:
        seen.append(req)
        return {"by": by, "cardno": req.get("cardno"), "valid": True}

    return handler


async def node_request(requester: NodePeer, req: dict[str, Any]) -> dict[str, Any]:
    """Send through a Node requester once it has found its responder."""
    await requester.wait_for("added", timeout=FIRST_CONTACT)
    return await requester.request(req, timeout=5_000 * MS)


# --- Node requester -> Python responder ------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
async def test_node_requester_to_python_responder(
    variant: Variant, node_peer: NodePeerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    variant.apply_env(monkeypatch)
    seen: list[dict[str, Any]] = []
    async with Responder(name="validation service", **variant.python_kwargs()) as responder:
        responder.on("validate", recording_handler(seen))
        requester = await node_peer("requester", variant.node_config("node payments"))

        added = await requester.wait_for("added", timeout=FIRST_CONTACT)
        reply = await requester.request({"type": "validate", "cardno": "4111"}, timeout=5_000 * MS)

    assert reply["err"] is None, reply
    assert reply["res"] == {"by": "python", "cardno": "4111", "valid": True}
    assert len(seen) == 1
    assert seen[0]["type"] == "validate"
    assert seen[0]["cardno"] == "4111"
    advertisement = added["advertisement"]
    assert advertisement["axon_type"] == "rep"
    assert advertisement["name"] == "validation service"
    env_prefix = f"{variant.environment}:" if variant.environment else ""
    assert advertisement["key"] == f"{env_prefix}$${variant.key or ''}"
    assert advertisement.get("namespace") == variant.namespace


# --- Python requester -> Node responder ------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
async def test_python_requester_to_node_responder(
    variant: Variant, node_peer: NodePeerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    variant.apply_env(monkeypatch)
    responder = await node_peer(
        "responder", variant.node_config("node validation", respondsTo=["validate"])
    )
    async with Requester(name="payment requester", **variant.python_kwargs()) as requester:
        # Node cote's requests wait for a responder; coterie's wait within `timeout`.
        result = await requester.send({"type": "validate", "cardno": "4111"}, timeout=FIRST_CONTACT)

    assert result["type"] == "validate"
    assert result["cardno"] == "4111"
    assert result["by"] == "node validation"
    assert result["pid"] == responder.pid
    request = await responder.wait_for("request", timeout=1_000 * MS)
    assert request["req"]["cardno"] == "4111"
    added = await responder.wait_for("added", timeout=1_000 * MS)
    assert added["advertisement"]["axon_type"] == "req"
    assert added["advertisement"]["name"] == "payment requester"


# --- a mixed pool -----------------------------------------------------------


async def test_python_requester_balances_over_python_and_node_responders(
    node_peer: NodePeerFactory,
) -> None:
    python_seen: list[dict[str, Any]] = []
    node_responder = await node_peer(
        "responder", {"name": "node validation", "respondsTo": ["validate"]}
    )
    async with (
        Responder(name="python validation", discovery=python_discovery()) as responder,
        Requester(name="payment requester", discovery=python_discovery()) as requester,
    ):
        responder.on("validate", recording_handler(python_seen, by="python validation"))

        # Warm up until the requester has reached both responders.
        await node_responder.wait_for("added", timeout=FIRST_CONTACT)
        served: set[str] = set()
        deadline = time.monotonic() + FIRST_CONTACT
        while served != {"python validation", "node validation"}:
            assert time.monotonic() < deadline, f"reached only {served}"
            result = await requester.send({"type": "validate", "warmup": True}, timeout=2_000 * MS)
            served.add(result["by"])
            if len(served) < 2:
                await asyncio.sleep(50 * MS)

        results = await asyncio.gather(
            *(requester.send({"type": "validate", "n": n}, timeout=5_000 * MS) for n in range(20))
        )

    by = [r["by"] for r in results]
    assert len(results) == 20
    assert by.count("python validation") > 0, by
    assert by.count("node validation") > 0, by
    assert by.count("python validation") + by.count("node validation") == 20
    # Each request was served exactly once, by the responder its reply names.
    node_count = by.count("node validation")
    node_requests = await node_responder.wait_for_count(
        "request", node_count, timeout=2_000 * MS, predicate=lambda e: "n" in e["req"]
    )
    node_numbers = [e["req"]["n"] for e in node_requests]
    python_numbers = [r["n"] for r in python_seen if "n" in r]
    assert len(node_numbers) == node_count
    assert len(python_numbers) == by.count("python validation")
    assert sorted(node_numbers + python_numbers) == list(range(20))


async def test_gather_and_send_to_one_node_reach_node_cote_responders(
    node_peer: NodePeerFactory,
) -> None:
    node_responder = await node_peer(
        "responder", {"name": "node validation", "respondsTo": ["validate"]}
    )
    async with (
        Responder(name="python one", discovery=python_discovery()) as one,
        Responder(name="python two", discovery=python_discovery()) as two,
        Responder(name="python three", discovery=python_discovery()) as three,
        Requester(name="payment requester", discovery=python_discovery()) as requester,
    ):
        one.on("validate", lambda req: {"by": "python one"})
        two.on("validate", lambda req: {"by": "python two"})
        three.on("validate", lambda req: {"by": "python three"})
        await node_responder.wait_for("added", timeout=FIRST_CONTACT)
        await requester.wait_connected(4, timeout=FIRST_CONTACT)
        # 3 Python responders and 1 Node cote responder: 4 answers.
        answers = await requester.gather({"type": "validate", "n": 1}, timeout=5_000 * MS)
        by = {node: answer["by"] for node, answer in answers.items()}
        assert sorted(by.values()) == [
            "node validation",
            "python one",
            "python three",
            "python two",
        ]
        assert by[one.id] == "python one" and by[two.id] == "python two"
        assert by[three.id] == "python three"
        (node_id,) = [node for node, name in by.items() if name == "node validation"]
        # The same Node responder, pinned: it takes every request.
        pinned = await asyncio.gather(
            *(
                requester.send({"type": "validate", "n": n}, node=node_id, timeout=5_000 * MS)
                for n in range(2, 12)
            )
        )
        assert {r["by"] for r in pinned} == {"node validation"}
        assert sorted(r["n"] for r in pinned) == list(range(2, 12))
        assert one.handled == 1 and two.handled == 1 and three.handled == 1
    # It saw the gathered request and the ten pinned ones, and nothing else new.
    requests = await node_responder.wait_for_count("request", 11, timeout=2_000 * MS)
    assert sorted(e["req"]["n"] for e in requests) == list(range(1, 12))
    assert all(set(e["req"]) == {"type", "n"} for e in requests)


async def test_a_node_cote_retryable_error_is_tried_on_another_responder(
    node_peer: NodePeerFactory,
) -> None:
    node_responder = await node_peer(
        "responder",
        {
            "name": "node flaky",
            "respondsTo": ["charge"],
            "reply": {"mode": "error", "code": "retryable", "message": "node pool full"},
        },
    )
    # Fewest in flight, the Node responder linked first: every request goes
    # there first, and only "never the same node twice in a row" moves it on.
    async with Requester(
        name="payment requester", discovery=python_discovery(), balance="pending"
    ) as requester:
        await requester.wait_connected(1, timeout=FIRST_CONTACT)
        async with Responder(name="python steady", discovery=python_discovery()) as steady:
            steady.on("charge", lambda req: {"by": "python steady", "n": req["n"]})
            await requester.wait_connected(2, timeout=FIRST_CONTACT)
            answers = [
                await requester.send({"type": "charge", "n": n}, timeout=5_000 * MS)
                for n in range(3)
            ]
            assert steady.handled == 3
    assert answers == [{"by": "python steady", "n": n} for n in range(3)]
    requests = await node_responder.wait_for_count("request", 3, timeout=2_000 * MS)
    assert [e["req"]["n"] for e in requests] == [0, 1, 2]  # each ran there first, once


# --- isolation --------------------------------------------------------------


async def test_mismatched_namespace_python_requester_does_not_reach_node(
    node_peer: NodePeerFactory,
) -> None:
    responder = await node_peer(
        "responder", {"name": "node validation", "namespace": "b", "respondsTo": ["validate"]}
    )
    async with Requester(
        name="payment requester", namespace="a", discovery=python_discovery()
    ) as requester:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await requester.send({"type": "validate"}, timeout=1_500 * MS)
        elapsed = time.monotonic() - started

    assert elapsed < 3_000 * MS, f"a timeout of {1_500 * MS:.2f} s took {elapsed:.2f} s"
    await responder.close()
    assert responder.find("request") == []
    assert responder.find("added") == []


async def test_mismatched_namespace_node_requester_does_not_reach_python(
    node_peer: NodePeerFactory,
) -> None:
    seen: list[dict[str, Any]] = []
    async with Responder(
        name="validation service", namespace="b", discovery=python_discovery()
    ) as responder:
        responder.on("validate", recording_handler(seen))
        requester = await node_peer("requester", {"name": "node payments", "namespace": "a"})

        reply = await requester.request({"type": "validate"}, timeout=1_500 * MS)

    assert reply["errLocal"] is True
    assert reply["err"]["message"] == "Request timed out."
    assert seen == []
    assert requester.find("added") == []


# --- errors -----------------------------------------------------------------


async def test_python_handler_error_reaches_node_requester(node_peer: NodePeerFactory) -> None:
    async with Responder(name="validation service", discovery=python_discovery()) as responder:

        @responder.on("validate")
        async def validate(req: dict[str, Any]) -> dict[str, Any]:
            raise ValueError(f"card {req['cardno']} is invalid")

        requester = await node_peer("requester", {"name": "node payments"})
        reply = await node_request(requester, {"type": "validate", "cardno": "0000"})

    assert not reply.get("errLocal"), reply
    err = reply["err"]
    assert isinstance(err, dict), reply
    assert "card 0000 is invalid" in err["message"]
    assert isinstance(err["name"], str) and err["name"]
    assert reply["res"] is None


@pytest.mark.parametrize(
    ("mode", "payload"),
    [
        # A thrown JS Error serializes to {} on the wire: still an error.
        ("throw", {}),
        ("error", {"name": "Error", "message": "card declined"}),
    ],
)
async def test_node_handler_error_raises_remote_error(
    mode: str, payload: dict[str, Any], node_peer: NodePeerFactory
) -> None:
    await node_peer(
        "responder",
        {
            "name": "node validation",
            "respondsTo": ["validate"],
            "reply": {"mode": mode, "message": "card declined"},
        },
    )
    async with Requester(name="payment requester", discovery=python_discovery()) as requester:
        with pytest.raises(RemoteError) as caught:
            await requester.send({"type": "validate", "cardno": "0000"}, timeout=FIRST_CONTACT)

    assert caught.value.payload == payload
    if payload:
        assert caught.value.message == "card declined"
        assert caught.value.name == "Error"


# --- coterie's discovery extras are harmless to Node peers -----------------


async def test_goodbye_and_fast_contact_are_harmless_to_node(
    node_peer: NodePeerFactory,
) -> None:
    # Python nodes answer newcomers at once and say goodbye on close; a Node
    # requester must take both in its stride and keep serving.
    disc = python_discovery()
    async with Responder(name="stayer", discovery=disc) as stayer:
        stayer.on("validate", recording_handler([], by="stayer"))
        leaver = Responder(name="leaver", discovery=disc)
        await leaver.start()
        leaver.on("validate", recording_handler([], by="leaver"))
        requester = await node_peer("requester", VARIANTS[0].node_config("node payments"))
        await requester.wait_for_count("added", 2, timeout=FIRST_CONTACT)
        assert stayer.discovery is not None and stayer.discovery.hellos_sent >= 2
        await leaver.close()  # sends a goodbye datagram
        # cote ignores the goodbye and drops the node after its own timeout;
        # until then it may still pick the closed link (its weak spot, not ours).
        await requester.wait_for("removed", timeout=5_000 * MS)
        replies = [
            await requester.request({"type": "validate", "cardno": str(n)}, timeout=5_000 * MS)
            for n in range(6)
        ]
        assert [r["err"] for r in replies] == [None] * 6
        assert {r["res"]["by"] for r in replies} == {"stayer"}
        assert requester.proc.returncode is None  # still running


# --- cote's own behaviours a Node team relies on (issue 28) ----------------


async def test_node_requester_reaches_python_pattern_handlers(node_peer: NodePeerFactory) -> None:
    # cote's responders are EventEmitter2 emitters (wildcard, delimiter "::"):
    # on('*') serves every type without "::", on('orders::*') the family,
    # on('**') all; coterie's exact type wins over a pattern.
    async with Responder(name="wild", discovery=python_discovery()) as responder:
        responder.on("orders::new", lambda r: "exact")
        responder.on("**", lambda r: f"all {r['type']}")
        responder.on("orders::*", lambda r: f"family {r['type']}")
        responder.on("*", lambda r: f"one {r['type']}")
        requester = await node_peer("requester", {"name": "node caller"})
        await requester.wait_for("added", timeout=FIRST_CONTACT)
        replies = {
            kind: await requester.request({"type": kind}, timeout=5_000 * MS)
            for kind in ("validate", "orders::paid", "orders::new", "a::b::c")
        }

    assert {k: (r["err"], r["res"]) for k, r in replies.items()} == {
        "validate": (None, "one validate"),
        "orders::paid": (None, "family orders::paid"),
        "orders::new": (None, "exact"),
        "a::b::c": (None, "all a::b::c"),
    }


async def test_node_requester_sending_a_string_is_ignored_as_cote_does(
    node_peer: NodePeerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # cote's send('a string') sends it; cote's responder ignores it (its
    # requester times out). coterie's own Requester refuses it with a TypeError.
    async with Responder(name="strict", discovery=python_discovery()) as responder:
        responder.on("validate", lambda r: "valid")
        requester = await node_peer("requester", {"name": "node caller", "timeout": 800})
        await requester.wait_for("added", timeout=FIRST_CONTACT)
        await requester.send_cmd({"cmd": "send", "seq": 1, "req": "a string"})
        ignored = await requester.wait_for("reply", 5_000 * MS, lambda e: e.get("seq") == 1)
        assert ignored["errLocal"] is True and ignored["err"]["message"] == "Request timed out."
        after = await requester.request({"type": "validate"}, timeout=5_000 * MS)
        async with Requester(name="py caller", discovery=python_discovery()) as py:
            with pytest.raises(TypeError):
                await py.send("a string", timeout=FIRST_CONTACT)  # type: ignore[arg-type]
        assert responder.ignored == 1

    assert (after["err"], after["res"]) == (None, "valid")
    lines = [r.getMessage() for r in caplog.records if "not an object" in r.getMessage()]
    assert len(lines) == 1 and "(str)" in lines[0], lines


async def test_a_discovery_gap_keeps_the_link_to_a_node_responder(
    node_peer: NodePeerFactory,
) -> None:
    # cote's "Does not try to reconnect twice to the same responder": its
    # hellos stop for 3 node timeouts while the TCP link stays up.
    responder = await node_peer("responder", {"name": "node validation"})
    removed: list[str] = []
    async with Requester(name="payments", discovery=python_discovery()) as requester:
        first = await requester.send({"type": "validate", "n": 1}, timeout=FIRST_CONTACT)
        assert first["by"] == "node validation"
        assert requester.discovery is not None
        requester.discovery.on(
            lambda event, node: removed.append(node.id) if event == "removed" else None
        )
        gap = 3 * FAST_DISCOVERY["nodeTimeout"]
        await responder.send_cmd({"cmd": "pause_hellos", "ms": gap})
        await responder.wait_for("hellos_resumed", timeout=gap / 1000 + 5_000 * MS)
        after = await requester.send({"type": "validate", "n": 2}, timeout=FIRST_CONTACT)

    assert after["by"] == "node validation"
    assert len(responder.find("connect")) == 1, responder.describe()
    assert removed == [], "the node was dropped although its link was up"
