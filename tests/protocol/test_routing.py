"""The router's bookkeeping: peers coming up, requests, and what it counts.

Every router test drives the pure router with inputs and a time argument: no
loop, no sleeps. The router's subjects have their own files:
``test_routing_balancing`` (which peer a request goes to), ``test_routing_waiting``
(requests without a peer, the settle window), ``test_routing_answers`` (each request
answered exactly once), ``test_routing_deadlines`` (timeouts, ``due``,
``next_deadline``), ``test_routing_failover`` (lost links, leaving and returning
peers); ejection is in ``test_outliers`` and slow start in ``test_slowstart``.
"""

from __future__ import annotations

import pytest

from coterie.protocol.routing import Router
from tests.protocol.helpers import ANY, ok, req, sends


def test_a_peer_cannot_come_up_twice() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    with pytest.raises(ValueError, match="peer 'a' is already up"):
        router.peer_up("a", ANY, 1)


def test_request_repr_names_it_and_where_it_is() -> None:
    router = Router()
    request = req(0, "price")
    assert repr(request) == "<Request r0 'price' on queue>"
    router.peer_up("a", ANY, 0)
    router.submit(request, 0)
    assert repr(request) == "<Request r0 'price' on a>"


def test_inflight_on_an_unknown_peer_is_zero() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    assert router.inflight_on("a") == 1
    assert router.inflight_on("nobody") == 0


def test_inputs_about_unknown_peers_change_nothing() -> None:
    router = Router()
    router.submit(req(0, timeout=1.0), 0.0)  # waits: no peer
    assert router.peer_failed("ghost", 0.0) == []
    assert router.peer_changed("ghost", ANY, 0.0) == []
    assert router.pending == 1 and router.next_deadline() == pytest.approx(1.0)


def test_traffic_counts_requests_and_error_replies_per_link() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    sent = {i: sends(router.submit(req(i), 0))[0][0] for i in range(5)}
    assert router.traffic() == {"a": (2, 0), "b": (3, 0)}
    on_b = [i for i, peer in sent.items() if peer == "b"]
    router.reply("b", [{"message": "no"}, f"r{on_b[0]}"], 1)  # an error reply
    router.reply("b", ok(f"r{on_b[1]}"), 1)
    router.reply("b", [None, None, "r99"], 1)  # late: no request, not counted
    assert router.traffic() == {"a": (2, 0), "b": (3, 1)}
    # A lost link's requests are resent and count on the link they go to.
    router.link_lost("a", 2)
    assert router.traffic()["b"] == (5, 1)
    router.peer_up("a", ANY, 3)  # a new link counts from zero
    assert router.traffic()["a"] == (0, 0)
