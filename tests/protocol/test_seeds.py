"""The seed set: who belongs to a seeded mesh, kept across failed lookups."""

from __future__ import annotations

from coterie.protocol.seeds import FAILED, RECOVERED, SeedSet


def test_a_hello_counts_from_a_member_or_when_it_announces_one() -> None:
    seeds = SeedSet(["mesh.example"], static=["10.0.0.9"])
    seeds.update("mesh.example", ("10.0.0.1",))
    assert seeds.admits("10.0.0.1", None)
    assert seeds.admits("10.0.0.9", "10.0.0.9")  # the static list belongs
    assert seeds.admits("172.17.0.1", "10.0.0.1")  # behind NAT, announcing a seed
    assert not seeds.admits("10.0.0.66", "10.0.0.66")
    assert not seeds.admits("10.0.0.66", ["10.0.0.1"])  # not a string: no
    seeds.update("mesh.example", ())
    assert not seeds.admits("10.0.0.1", None)


def test_a_failure_is_reported_once_and_keeps_the_last_answer() -> None:
    seeds = SeedSet(["a.example"])
    assert seeds.update("a.example", ("10.0.0.1",)) is None
    assert seeds.update("a.example", None) == FAILED
    assert seeds.update("a.example", None) is None  # said once
    assert seeds.members == {"10.0.0.1"}
    assert seeds.update("a.example", ("10.0.0.2",)) == RECOVERED
    assert seeds.update("a.example", ("10.0.0.2",)) is None
    assert seeds.addresses == ("10.0.0.2",)
