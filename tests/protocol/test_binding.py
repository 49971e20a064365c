"""A linked coterie responder's routed fields come from its link (coterie.protocol.binding)."""

from __future__ import annotations

from coterie.protocol.binding import ADVERT, Bindings, advert_frame, is_advert, routed
from coterie.protocol.framing import FrameDecoder

ADV = {"name": "v", "respondsTo": ["validate"], "namespace": None, "key": "$$", "port": 1}


def test_the_frame_carries_the_routed_fields_only() -> None:
    (args,) = FrameDecoder().feed(advert_frame(ADV))
    assert args == [ADVERT, {"respondsTo": ["validate"], "namespace": None, "key": "$$"}]
    assert is_advert(args) and not is_advert([None, "x", "id"])


def test_a_hello_that_changes_a_bound_peers_routed_fields_is_ignored_and_counted() -> None:
    bindings = Bindings()
    bindings.bind("p", ADV)
    assert not bindings.from_discovery("p", {**ADV, "respondsTo": []})
    assert not bindings.from_discovery("p", {**ADV, "namespace": "other"})
    assert bindings.forged == 2
    assert bindings.from_discovery("p", {**ADV, "weight": 3})  # nothing routed changes
    assert bindings.from_discovery("unbound", {"respondsTo": []})  # cote's behaviour
    bindings.unbind("p")
    assert bindings.from_discovery("p", {**ADV, "respondsTo": []})


def test_the_link_updates_what_routing_uses() -> None:
    bindings = Bindings()
    bindings.bind("p", {**ADV, "respondsTo": []})  # the hello before the link was forged
    adv = bindings.from_link("p", routed({**ADV, "respondsTo": ["validate", "refund"]}))
    assert adv is not None and adv["respondsTo"] == ["validate", "refund"]
    assert adv["port"] == 1 and adv["key"] == "$$"
    assert routed(bindings.bound("p") or {}) == routed(adv)
    assert bindings.from_discovery("p", {**ADV, "respondsTo": ["validate", "refund"]})


def test_malformed_or_unbound_link_fields_change_nothing() -> None:
    bindings = Bindings()
    assert bindings.from_link("p", {"respondsTo": ["a"]}) is None  # not bound
    bindings.bind("p", ADV)
    for bad in ("no", {"respondsTo": "a"}, {"respondsTo": [1]}, {"namespace": 3},
                {"respondsTo": ["t"] * 10_001}):  # fmt: skip
        assert bindings.from_link("p", bad) is None
    assert bindings.bound("p") == ADV
