"""NodeTable: own packets, new/updated nodes, silence, goodbye and master election.

The clock is a number passed in, so every timing rule is exact. The election's
comparisons follow node-discover's ``check``: a silent master counts while
silent for strictly less than ``master_timeout``, and only a strictly heavier
eligible node defers us.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from coterie.protocol.nodes import GAP_TIMEOUTS, Node, NodeTable, ReplyBudget, _reachable
from coterie.protocol.packets import HELLO, make_packet

ME, MY_PID = "me", "my-pid"


def table(**kwargs: Any) -> NodeTable:
    kwargs.setdefault("node_timeout", 5.0)
    kwargs.setdefault("master_timeout", 6.0)
    kwargs.setdefault("weight", -0.17)
    return NodeTable(ME, MY_PID, **kwargs)


def hello(
    iid: str,
    *,
    pid: str = "other-pid",
    host: str | None = None,
    master: bool = False,
    eligible: bool = True,
    weight: Any = -0.18,
    **adv: Any,
) -> dict[str, Any]:
    """A hello from ``iid`` (host ``host-<iid>`` unless ``host``); no weight when ``None``."""
    advertisement = {"type": "service", "name": iid, "key": "$$", "axon_type": "rep", **adv}
    data: dict[str, Any] = {
        "isMaster": master,
        "isMasterEligible": eligible,
        "advertisement": advertisement,
    }
    if weight is not None:
        data["weight"] = weight
    return make_packet(HELLO, pid, iid, host or f"host-{iid}", data)


# -- what a hello records --------------------------------------------------------------


def test_own_packets_are_ignored() -> None:
    t = table()
    assert t.hello(hello(ME, pid=MY_PID), "127.0.0.1", 0.0) is None
    assert t.nodes == {}
    # Another component of this process counts, unless ignore_process is set.
    assert t.hello(hello("sibling", pid=MY_PID), "127.0.0.1", 0.0) is not None
    t2 = table(ignore_process=True)
    assert t2.hello(hello("sibling", pid=MY_PID), "127.0.0.1", 0.0) is None
    assert t2.goodbye(hello("sibling", pid=MY_PID), "127.0.0.1") is None


def test_new_then_same_then_changed() -> None:
    t = table()
    seen = t.hello(hello("a", port=8000), "127.0.0.2", 1.0)
    assert seen is not None
    node, is_new, was_changed = seen
    assert (is_new, was_changed) == (True, False)
    assert node.address == "127.0.0.2" and node.host_name == "host-a"
    assert node.process_id == "other-pid" and node.port == 8000
    assert node.last_seen == 1.0 and node.weight == -0.18

    again = t.hello(hello("a", port=8000), "127.0.0.2", 2.0)
    assert again is not None and again[1:] == (False, False)
    assert again[0] is node and node.last_seen == 2.0

    changed = t.hello(hello("a", port=8000, respondsTo=["x"]), "127.0.0.2", 3.0)
    assert changed is not None and changed[1:] == (False, True)
    assert node.advertisement["respondsTo"] == ["x"] and list(t.nodes) == ["a"]


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
    t.hello(hello("a", host="renamed"), "10.0.0.7", 1.0)
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


def test_a_known_id_is_pinned_to_its_address_and_port() -> None:
    t = table()
    t.hello(hello("a", port=8000), "127.0.0.2", 1.0)
    # A forger reusing the id from another host, or pointing it at another port.
    assert t.hello(hello("a", port=8000), "127.0.0.66", 2.0) is None
    assert t.hello(hello("a", port=6666), "127.0.0.2", 2.0) is None
    node = t.nodes["a"]
    assert (node.address, node.port, node.last_seen) == ("127.0.0.2", 8000, 1.0)
    assert t.ignored["address"] == 1 and t.ignored["port"] == 1


def test_the_table_is_bounded() -> None:
    t = NodeTable("me", MY_PID, node_timeout=5, master_timeout=6, max_nodes=3)
    for n in range(5):
        t.hello(hello(f"n{n}"), "127.0.0.2", 0.0)
    assert sorted(t.nodes) == ["n0", "n1", "n2"] and t.ignored["full"] == 2
    assert t.hello(hello("n0"), "127.0.0.2", 1.0) is not None  # known ones still count


# -- where to connect ------------------------------------------------------------------


def test_node_port_must_be_a_valid_int() -> None:
    for bad in ("8000", 0, 70000, None, 8000.5):
        node = Node("x", "p", "h", "127.0.0.1", {"port": bad})
        assert node.port is None
    assert Node("x", "p", "", "0.0.0.0", {}).connect_host(False) == "127.0.0.1"
    assert Node("x", "p", "h", "10.1.1.1", {}).connect_host(True) == "h"
    assert Node("x", "p", "", "10.1.1.1", {}).connect_host(True) == "10.1.1.1"


def _announcing(address: object, source: str, host: str = "h") -> Node:
    return Node("x", "p", host, source, {}, data={"address": address})


def test_connect_to_the_announced_address_first() -> None:
    # A coterie peer announces where to reach it: that wins, host names or not.
    assert _announcing("198.18.1.11", "198.18.1.11").connect_host(False) == "198.18.1.11"
    assert _announcing("203.0.113.7", "10.0.0.5").connect_host(True) == "203.0.113.7"
    assert _announcing("svc.example", "0.0.0.0").connect_host(False) == "svc.example"
    # Redis carries no source address (0.0.0.0): never dial localhost for it.
    assert _announcing("198.18.2.11", "0.0.0.0").connect_host(False) == "198.18.2.11"
    assert _announcing("198.18.2.11", "0.0.0.0").advertised == "198.18.2.11"


def test_loopback_or_missing_announcements_are_ignored() -> None:
    # node-discover always announces 127.0.0.1: the source address is the truth.
    assert _announcing("127.0.0.1", "198.18.1.12").connect_host(False) == "198.18.1.12"
    assert _announcing("127.0.0.1", "198.18.1.12").connect_host(True) == "h"
    for nothing in ("0.0.0.0", "", "localhost", None, 7):
        assert _announcing(nothing, "198.18.1.12").connect_host(False) == "198.18.1.12"
    # No source address (Redis) and nothing announced: the host name, as cote.
    assert _announcing("127.0.0.1", "0.0.0.0").connect_host(False) == "h"
    assert _announcing("127.0.0.1", "0.0.0.0", host="").connect_host(False) == "127.0.0.1"


@pytest.mark.parametrize(
    "address",
    ["198.18.1.12", "127.0.0.1", "127.9.9.9", "0.0.0.0", "010.0.0.1", "127.0.0.01", "1.2.3",
     "256.1.1.1", "0x7f.0.0.1", "1.2.3.4 ", "\u0663.1.1.1", "1.2.3.4\x00", "::1", "::",
     "::ffff:127.0.0.1", "fe80::1%eth0", "::1%lo", "2001:db8::1", ":::", "svc.example",
     "LocalHost", "", "1.2.3.4.5", "1..2.3", "+1.2.3.4", "1.2.3.-4", "1.2.3.1000",
     "255.255.255.255", "0.0.0.1"],
)  # fmt: skip
def test_an_announced_address_is_judged_as_ipaddress_judges_it(address: str) -> None:
    # The fast path (no ipaddress module, no socket) decides as ipaddress would.
    if not address or address.lower() == "localhost":
        expected = False
    else:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            expected = True
        else:
            expected = not (ip.is_loopback or ip.is_unspecified)
    assert _reachable(address) is expected


# -- silence and goodbye ---------------------------------------------------------------


def test_silent_nodes_drop_after_node_timeout() -> None:
    t = table(node_timeout=5.0)
    t.hello(hello("a"), "127.0.0.2", 0.0)
    t.hello(hello("b"), "127.0.0.2", 3.0)
    assert t.check(5.0) == []  # exactly at the timeout: still there
    removed = t.check(5.5)
    assert [n.id for n in removed] == ["a"]
    assert list(t.nodes) == ["b"]
    t.hello(hello("b"), "127.0.0.2", 6.0)  # a hello refreshes it
    assert t.check(10.5) == []
    assert [n.id for n in t.check(11.5)] == ["b"]
    assert t.nodes == {}


def test_every_silent_node_is_dropped_in_one_check() -> None:
    t = table(node_timeout=5.0)
    for iid in "abc":
        t.hello(hello(iid), "10.0.0.7", 0.0)
    t.hello(hello("fresh"), "10.0.0.7", 4.0)
    assert sorted(n.id for n in t.check(5.5)) == ["a", "b", "c"]
    assert list(t.nodes) == ["fresh"]


def test_goodbye_and_remove() -> None:
    t = table()
    t.hello(hello("a"), "127.0.0.2", 0.0)
    assert t.goodbye(hello("a"), "127.0.0.66") is None  # not from its address: forged
    assert t.ignored["goodbye"] == 1 and "a" in t.nodes
    gone = t.goodbye(hello("a"), "127.0.0.2")
    assert gone is not None and gone.id == "a"
    assert t.goodbye(hello("a"), "127.0.0.2") is None
    t.hello(hello("b"), "127.0.0.2", 0.0)
    assert t.remove("b") is not None and t.remove("b") is None


# -- the master election ---------------------------------------------------------------


def test_alone_becomes_master() -> None:
    t = table()
    assert not t.is_master
    t.check(0.0)
    assert t.is_master


def test_not_master_when_a_master_exists() -> None:
    t = table()
    t.hello(hello("m", master=True, weight=-0.5), "127.0.0.2", 0.0)
    t.check(1.0)
    assert not t.is_master


def test_not_master_when_a_heavier_eligible_node_exists() -> None:
    t = table(weight=-0.17)
    t.hello(hello("older", weight=-0.16), "127.0.0.2", 0.0)  # weighs more
    t.check(1.0)
    assert not t.is_master
    t2 = table(weight=-0.17)
    t2.hello(hello("younger", weight=-0.18), "127.0.0.2", 0.0)
    t2.hello(hello("ineligible", weight=-0.1, eligible=False), "127.0.0.2", 0.0)
    t2.check(1.0)
    assert t2.is_master


def test_a_master_of_equal_weight_does_not_outrank_us() -> None:
    t = table(weight=-0.17)
    t.check(0.0)
    assert t.is_master
    t.hello(hello("twin", master=True, weight=-0.17), "10.0.0.7", 1.0)
    assert t.is_master


def test_not_eligible_never_master() -> None:
    t = table(master_eligible=False)
    t.check(0.0)
    assert not t.is_master


def test_an_eligible_node_of_equal_weight_does_not_defer_us() -> None:
    t = table(weight=-0.17)
    t.hello(hello("twin", weight=-0.17), "10.0.0.7", 0.0)
    t.check(1.0)
    assert t.is_master


def test_master_steps_down_for_a_heavier_master() -> None:
    t = table(weight=-0.17)
    t.check(0.0)
    assert t.is_master
    t.hello(hello("light", master=True, weight=-0.9), "127.0.0.2", 1.0)
    assert t.is_master
    t.hello(hello("heavy", master=True, weight=-0.1), "127.0.0.2", 1.0)
    assert not t.is_master


def test_silent_master_blocks_election_until_master_timeout() -> None:
    t = table(node_timeout=5.0, master_timeout=6.0)
    t.hello(hello("m", master=True, weight=-0.9), "127.0.0.2", 0.0)
    # Dropped after node_timeout, but within master_timeout it still counts.
    assert [n.id for n in t.check(5.5)] == ["m"]
    assert not t.is_master
    t.check(7.0)
    assert t.is_master


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


# -- the reply budget ------------------------------------------------------------------


def test_the_reply_budget_allows_a_burst_then_a_rate() -> None:
    budget = ReplyBudget(rate=10, burst=3)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not budget.take(0.05)  # half a token
    assert budget.take(0.1)
    # A flood of 1000 newcomers over one second: the burst, then the rate.
    assert sum(budget.take(1.0 + i / 1000) for i in range(1000)) <= 3 + 10 + 1
    assert budget.refused >= 990
    with pytest.raises(ValueError):
        ReplyBudget(rate=0)


# -- rules the discovery service used to decide itself ------------------------------------


def test_a_sweep_says_when_this_node_is_promoted_once() -> None:
    t = table()
    first = t.sweep(0.0)
    assert first.promoted and first.removed == [] and t.is_master
    assert not t.sweep(1.0).promoted  # already master: nothing to announce again
    t2 = table()
    t2.hello(hello("m", master=True, weight=-0.5), "127.0.0.2", 0.0)
    assert not t2.sweep(1.0).promoted


def test_the_election_follows_nodes_that_change_or_leave() -> None:
    t = table(weight=-0.17)
    t.hello(hello("m", master=True, weight=-0.9), "127.0.0.2", 0.0)
    t.hello(hello("heavy", weight=-0.1), "127.0.0.3", 0.0)
    assert not t.sweep(1.0).promoted
    t.hello(hello("m", master=False, weight=-0.9), "127.0.0.2", 1.0)  # stepped down
    assert not t.sweep(1.5).promoted  # the heavier eligible node still defers us
    assert t.remove("heavy") is not None
    assert t.sweep(2.0).promoted
    t2 = table(weight=-0.17)
    t2.hello(hello("heavy", weight=-0.1), "127.0.0.3", 0.0)
    t2.hello(hello("heavy", weight=-0.9), "127.0.0.3", 1.0)  # now lighter
    assert t2.sweep(1.5).promoted


def test_only_a_newcomer_is_greeted_not_a_node_that_returns() -> None:
    t = table(max_nodes=2)
    t.hello(hello("a"), "127.0.0.2", 0.0)
    assert t.greets("a")
    assert [n.id for n in t.sweep(5.5).removed] == ["a"]
    seen = t.hello(hello("a"), "127.0.0.2", 6.0)
    assert seen is not None and seen[1]  # added again...
    assert not t.greets("a")  # ...but it knew the mesh all along
    t.goodbye(hello("a"), "127.0.0.2")
    assert not t.greets("a")
    # The memory of departed ids is bounded by max_nodes.
    for iid in ("b", "c", "d"):
        t.hello(hello(iid), "127.0.0.2", 7.0)
        t.remove(iid)
    assert t.greets("a") and not t.greets("d")


def test_a_goodbye_for_a_linked_node_is_left_to_its_link() -> None:
    t = table()
    t.hello(hello("a"), "127.0.0.2", 0.0)
    assert t.goodbye(hello("a"), "127.0.0.2", linked=True) is None
    assert "a" in t.nodes and t.ignored["linked"] == 1
    gone = t.goodbye(hello("a"), "127.0.0.2", linked=False)
    assert gone is not None and gone.id == "a"


def test_traffic_on_a_link_keeps_a_node_whose_hellos_are_lost() -> None:
    t = table(node_timeout=5.0)
    t.hello(hello("busy"), "127.0.0.2", 0.0)
    t.hello(hello("unlinked"), "127.0.0.3", 0.0)
    heard = {"busy": 4.0}
    swept = t.sweep(6.0, heard.get)
    assert [n.id for n in swept.removed] == ["unlinked"]
    assert t.nodes["busy"].last_seen == 4.0
    assert t.sweep(9.0, heard.get).removed == []  # heard 5 s ago: still alive


def test_an_open_idle_link_keeps_a_node_through_a_discovery_gap_up_to_the_bound() -> None:
    # cote keeps its links whatever discovery says; lost hellos must not tear one down.
    t = table(node_timeout=5.0)
    assert t.gap_bound == GAP_TIMEOUTS * 5.0 == 60.0
    t.hello(hello("idle"), "127.0.0.2", 0.0)
    t.hello(hello("back"), "127.0.0.3", 0.0)
    open_links = {"idle": 0.0, "back": 0.0}  # open, never a byte
    for now in (6.0, 18.0, 30.0):  # hellos gone for 1, 3, 6 node timeouts
        assert t.sweep(now, open_links.get).removed == []
    assert t.nodes["idle"].last_seen == 30.0 and t.nodes["idle"].last_hello == 0.0
    t.hello(hello("back"), "127.0.0.3", 40.0)  # hellos return: the gap is over
    assert t.sweep(59.0, open_links.get).removed == []
    # Past the bound, checked with the node timeout: gone within one more.
    assert t.sweep(61.0, open_links.get).removed == []  # kept at 59 s: not read yet
    swept = t.sweep(64.5, open_links.get)
    assert [n.id for n in swept.removed] == ["idle"]
    assert "back" in t.nodes


def test_a_link_that_dies_in_a_gap_takes_the_node_with_it() -> None:
    t = table(node_timeout=5.0, gap_bound=100.0)
    t.hello(hello("n"), "127.0.0.2", 0.0)
    links = {"n": 0.0}
    assert t.sweep(6.0, links.get).removed == []
    del links["n"]  # the link closed (reset, keepalive, the peer left)
    assert [n.id for n in t.sweep(12.0, links.get).removed] == ["n"]


def test_a_sweep_reads_only_the_silent_nodes() -> None:
    t = table(node_timeout=5.0, max_nodes=20_000)
    t.hello(hello("old"), "127.0.0.2", 0.0)
    t.hello(hello("quiet"), "127.0.0.4", 0.5)
    for n in range(10_000):
        t.hello(hello(f"n{n}"), "127.0.0.3", 3.0)
    t.hello(hello("old"), "127.0.0.2", 4.0)  # heard again: now among the newest
    asked: list[str] = []

    def heard(iid: str) -> float | None:
        asked.append(iid)
        return None

    assert [n.id for n in t.sweep(5.6, heard).removed] == ["quiet"]
    assert asked == ["quiet"]  # not one question about the 10,001 live nodes
    assert len(t.sweep(8.1, heard).removed) == 10_000


def test_a_table_shared_by_a_process_records_all_its_components() -> None:
    t = NodeTable(None, MY_PID, node_timeout=5.0, master_timeout=6.0)
    assert t.hello(hello("one", pid=MY_PID), "127.0.0.1", 0.0) is not None
    assert t.hello(hello("two", pid=MY_PID), "127.0.0.1", 0.0) is not None
    assert sorted(t.nodes) == ["one", "two"]


def test_retain_forgets_every_node_the_rule_refuses() -> None:
    t = table()
    t.hello(hello("a", port=8000), "10.0.0.1", 1.0)
    t.hello(hello("b", port=8001), "10.0.0.2", 1.0)
    dropped = t.retain(lambda node: node.address == "10.0.0.1")
    assert [n.id for n in dropped] == ["b"] and list(t.nodes) == ["a"]
    assert t.retain(lambda node: True) == []


def test_a_repeated_hello_moves_the_clock_and_keeps_the_forgery_rules() -> None:
    t = table(node_timeout=5.0)
    assert not t.hello_again("a", "127.0.0.2", 1.0)  # unknown: read it in full
    t.hello(hello("a"), "127.0.0.2", 0.0)
    t.hello(hello("b"), "127.0.0.3", 0.5)
    assert not t.hello_again("a", "127.0.0.66", 3.0)  # another address: not a repeat
    assert t.hello_again("a", "127.0.0.2", 4.0)
    assert t.nodes["a"].last_seen == 4.0
    assert [n.id for n in t.sweep(5.6).removed] == ["b"]  # a moved behind b
    t2 = table(weight=-0.17)
    t2.hello(hello("m", master=True, weight=-0.1), "127.0.0.2", 0.0)
    t2.remove("m")
    t2.sweep(1.0)
    assert t2.is_master
    t2.hello(hello("m", master=True, weight=-0.1), "127.0.0.2", 2.0)
    assert not t2.is_master  # stepped down for the heavier master
    t2.is_master = True
    assert t2.hello_again("m", "127.0.0.2", 3.0)
    assert not t2.is_master  # its repeats say the same
