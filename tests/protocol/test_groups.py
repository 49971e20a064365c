"""Discovery groups and the etcd key layout: who hears of whom, and where a node registers."""

from __future__ import annotations

import pytest

from coterie.protocol.groups import (
    MIN_LEASE,
    NO_NAMESPACE,
    OBSERVERS,
    Entry,
    group_of,
    is_observer,
    lease_ttl,
    node_key,
    range_end,
    watched_prefixes,
)
from coterie.protocol.pairing import PAIRING_ROLES, ROLE_NAMES, build_advertisement


def test_keys_name_environment_and_namespace() -> None:
    rep = {"key": "prod:$$pay", "namespace": "eu/1", "axon_type": "rep"}
    assert group_of(rep) == ("prod", "eu%2F1")
    assert node_key("/coterie", rep, "i1") == "/coterie/prod/eu%2F1/i1"
    assert watched_prefixes("/coterie/", rep) == ("/coterie/prod/eu%2F1/", "/coterie/prod/+/")
    plain = {"key": "$$", "axon_type": "req"}
    assert node_key("/c", plain, "i2") == "/c//*/i2"
    # A namespace spelt like the reserved segments cannot take their place.
    assert group_of({"key": "$$", "namespace": "*", "axon_type": "req"})[1] == "%2A"
    assert group_of({"key": "$$", "namespace": "+", "axon_type": "req"})[1] == "%2B"
    monitor = {"key": "prod:$$", "type": "monitor"}
    assert node_key("/c", monitor, "m") == "/c/prod/+/m"
    assert watched_prefixes("/c", monitor) == ("/c/prod/",)


@pytest.mark.parametrize(
    ("key", "env"),
    [
        ("prod:$$pay", "prod"),
        ("$$pay", ""),
        ("eu west:$$", "eu%20west"),
        ("a:b:$$k", "a%3Ab"),  # an environment with a colon keeps it, encoded
        ("nodollars", ""),  # a foreign key: no environment
        ("prod$$x", ""),  # no colon before $$: not cote's shape, no environment
        (None, ""),
        (7, ""),
    ],
)
def test_the_environment_is_the_pairing_rule_s_split(key: object, env: str) -> None:
    assert group_of({"key": key, "axon_type": "req"})[0] == env


def test_built_advertisements_land_in_their_group() -> None:
    for role in sorted(PAIRING_ROLES):
        adv = build_advertisement(role, name=None, namespace="ns", key="k", environment="dev")
        assert group_of(adv) == ("dev", "ns") and not is_observer(adv)
        bare = build_advertisement(role, name=None, namespace=None, key=None, environment="")
        assert group_of(bare) == ("", NO_NAMESPACE)
        assert group_of({**bare, "namespace": ""}) == ("", NO_NAMESPACE)


def test_nodes_without_a_pairing_role_observe() -> None:
    assert PAIRING_ROLES == {"req", "rep", "pub-emitter", "sub-emitter"} < set(ROLE_NAMES)
    for adv in ({"type": "monitor"}, {"axon_type": "sockend"}, {"axon_type": 3}, {}):
        assert is_observer(adv)
        assert group_of({**adv, "key": "e:$$", "namespace": "ns"}) == ("e", OBSERVERS)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"/c/prod/", b"/c/prod0"),
        (b"a", b"b"),
        ("a\xff".encode(), b"a\xc3\xc0"),  # UTF-8 c3 bf: the last byte is raised
        (b"a\xfe\xff\xff", b"a\xff"),  # trailing 0xFF bytes are dropped
        (b"\xff\xff", b"\0"),  # nothing to raise: every key
        (b"", b"\0"),
    ],
)
def test_range_end_covers_exactly_the_prefix(prefix: bytes, end: bytes) -> None:
    assert range_end(prefix) == end


@pytest.mark.parametrize(
    ("node_timeout_ms", "ttl"), [(5000, 5), (5001, 6), (1000, MIN_LEASE), (0, MIN_LEASE), (2500, 3)]
)
def test_the_lease_is_the_node_timeout_rounded_up_to_seconds(
    node_timeout_ms: float, ttl: int
) -> None:
    assert lease_ttl(node_timeout_ms) == ttl


def test_an_entry_is_written_again_only_when_the_hello_changes() -> None:
    entry = Entry()
    advertisement: dict[str, object] = {"name": "pay", "respondsTo": ["a"]}
    data = {"isMaster": False, "address": "10.0.0.1", "advertisement": advertisement}
    assert entry.changed(data)  # the first hello is written
    assert not entry.changed(dict(data))  # the same again: nothing to write
    assert entry.changed({**data, "isMaster": True})  # promoted
    assert not entry.changed({**data, "isMaster": True})
    advertisement["respondsTo"] = ["a", "b"]  # changed in place, as a component does
    assert entry.changed({**data, "isMaster": True})
    assert not entry.changed({**data, "isMaster": True})
