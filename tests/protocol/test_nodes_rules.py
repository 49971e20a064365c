"""More node-table rules: what a hello records, and the election's edges.

Found by mutation testing. The election's comparisons follow node-discover's
``check``: a silent master counts while silent for strictly less than
``master_timeout``, and only a strictly heavier eligible node defers us.
"""

from __future__ import annotations

from typing import Any

from coterie.protocol.nodes import NodeTable
from coterie.protocol.packets import HELLO, make_packet


def table(**kwargs: Any) -> NodeTable:
    kwargs.setdefault("node_timeout", 5.0)
    kwargs.setdefault("master_timeout", 6.0)
    kwargs.setdefault("weight", -0.17)
    return NodeTable("me", "my-pid", **kwargs)


def hello(iid: str, *, master: bool = False, weight: Any = -0.18, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "isMaster": master,
        "isMasterEligible": True,
        "advertisement": {"name": iid, "key": "$$", "axon_type": "rep"},
    }
    if weight is not None:
        data["weight"] = weight
    packet = make_packet(HELLO, "other-pid", iid, f"host-{iid}", data)
    packet.update(fields)
    return packet


def test_a_hello_without_pid_or_host_name_records_empty_strings() -> None:
    packet = hello("a")
    del packet["pid"], packet["hostName"]
    seen = table().hello(packet, "10.0.0.7", 0.0)
    assert seen is not None
    node = seen[0]
    assert (node.process_id, node.host_name) == ("", "")
    assert node.connect_host(True) == "10.0.0.7"


def test_a_later_hello_updates_the_host_name_and_keeps_it_when_absent() -> None:
    t = table()
    t.hello(hello("a"), "10.0.0.7", 0.0)
    t.hello(hello("a", hostName="renamed"), "10.0.0.7", 1.0)
    assert t.nodes["a"].host_name == "renamed"
    silent = hello("a")
    del silent["hostName"]
    t.hello(silent, "10.0.0.7", 2.0)
    assert t.nodes["a"].host_name == "renamed"


def test_a_hello_keeps_its_data_and_a_weight_only_when_it_is_a_number() -> None:
    t = table()
    packet = hello("a", weight=-0.25)
    seen = t.hello(packet, "10.0.0.7", 0.0)
    assert seen is not None and seen[0].data == packet["data"]
    assert seen[0].weight == -0.25
    for bad in (None, "heavy", [1]):
        seen = t.hello(hello("a", weight=bad), "10.0.0.7", 1.0)
        assert seen is not None and seen[0].weight == 0.0


def test_a_master_of_equal_weight_does_not_outrank_us() -> None:
    t = table(weight=-0.17)
    t.check(0.0)
    assert t.is_master
    t.hello(hello("twin", master=True, weight=-0.17), "10.0.0.7", 1.0)
    assert t.is_master


def test_an_eligible_node_of_equal_weight_does_not_defer_us() -> None:
    t = table(weight=-0.17)
    t.hello(hello("twin", weight=-0.17), "10.0.0.7", 0.0)
    t.check(1.0)
    assert t.is_master


def test_every_silent_node_is_dropped_in_one_check() -> None:
    t = table(node_timeout=5.0)
    for iid in "abc":
        t.hello(hello(iid), "10.0.0.7", 0.0)
    t.hello(hello("fresh"), "10.0.0.7", 4.0)
    assert sorted(n.id for n in t.check(5.5)) == ["a", "b", "c"]
    assert list(t.nodes) == ["fresh"]


def test_a_silent_node_that_was_not_master_does_not_block_the_election() -> None:
    t = table(node_timeout=5.0, master_timeout=6.0)
    t.hello(hello("plain", weight=-0.9), "10.0.0.7", 0.0)
    assert [n.id for n in t.check(5.5)] == ["plain"]
    assert t.is_master


def test_a_silent_master_stops_counting_at_exactly_master_timeout() -> None:
    t = table(node_timeout=5.0, master_timeout=6.0)
    t.hello(hello("m", master=True, weight=-0.9), "10.0.0.7", 0.0)
    assert [n.id for n in t.check(6.0)] == ["m"]
    assert t.is_master
