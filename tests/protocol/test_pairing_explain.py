"""Why two components do not pair: ``explain`` and ``describe`` beside ``pairs``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coterie.protocol.pairing import (
    Mismatch,
    build_advertisement,
    describe,
    explain,
    pairs,
    role_of,
    split_key,
    unserved,
)

ME = "this requester"


def adv(role: str = "rep", **kwargs: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "validation service", "namespace": None, "key": None}
    fields.update({k: v for k, v in kwargs.items() if k in fields})
    extra = {"tls": "mtls/1"} if kwargs.get("tls") else None
    return build_advertisement(
        role, environment=kwargs.get("environment", ""), extra=extra, **fields
    )


optional_text = st.sampled_from([None, "", "a", "b"])
advertisements = st.fixed_dictionaries(
    {},
    optional={
        "axon_type": st.sampled_from(["req", "rep", "pub-emitter", None]),
        "key": st.sampled_from(["$$", "$$a", "prod:$$", "prod:$$a", "odd", ":$$a", None, 3]),
        "namespace": optional_text,
        "tls": st.sampled_from(["mtls/1", "mtls/2", None]),
    },
)


@given(mine=advertisements, theirs=advertisements)
def test_explain_is_empty_exactly_when_pairs(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert (explain(mine, theirs, "rep") == []) is pairs(mine, theirs, "rep")


@pytest.mark.parametrize(
    ("theirs", "mine", "sentence"),
    [
        (
            adv(namespace="payment"),
            adv("req", namespace="payments"),
            "a responder named 'validation service' is on the mesh in namespace 'payment';"
            " this requester is in 'payments'",
        ),
        (
            adv(namespace="payment"),
            adv("req"),
            "a responder named 'validation service' is on the mesh in namespace 'payment';"
            " this requester is in none",
        ),
        (
            adv(environment="prod"),
            adv("req", environment="staging"),
            "a responder named 'validation service' is on the mesh in environment 'prod';"
            " this requester is in 'staging'",
        ),
        (
            adv(key="cards"),
            adv("req", key="card"),
            "a responder named 'validation service' is on the mesh with key 'cards';"
            " this requester has key 'card'",
        ),
        (
            adv(tls=True),
            adv("req"),
            "a responder named 'validation service' is on the mesh with mutual TLS on its"
            " links; this requester is plaintext (give it tls= or secret=)",
        ),
        (
            adv(),
            adv("req", tls=True),
            "a responder named 'validation service' is on the mesh without TLS on its links;"
            " this requester runs mutual TLS, so they cannot link",
        ),
    ],
)
def test_describe_names_what_to_change(
    theirs: dict[str, Any], mine: dict[str, Any], sentence: str
) -> None:
    assert describe(theirs, explain(mine, theirs, "rep"), ME) == sentence


def test_every_difference_is_named_once_in_rule_order() -> None:
    mine = adv("req", namespace="a", key="k", environment="dev")
    theirs = adv(namespace="b", key="j", environment="prod", tls=True)
    assert explain(mine, theirs, "rep") == [
        Mismatch("environment", "dev", "prod"),
        Mismatch("key", "k", "j"),
        Mismatch("namespace", "a", "b"),
        Mismatch("link security", None, "mtls/1"),
    ]


def test_only_the_environment_differs() -> None:
    mine, theirs = adv("req", key="k", environment="dev"), adv(key="k", environment="prod")
    assert explain(mine, theirs, "rep") == [Mismatch("environment", "dev", "prod")]


def test_a_wrong_role_is_named() -> None:
    mine, theirs = adv("req"), adv("pub-emitter")
    (mismatch,) = explain(mine, theirs, "rep")
    assert str(mismatch) == "as a publisher; this one is a requester"


@pytest.mark.parametrize(
    ("advertised", "split"),
    [
        ("$$", (None, None)),
        ("$$cards", (None, "cards")),
        ("prod:$$cards", ("prod", "cards")),
        ("prod:$$", ("prod", None)),
        ("no-dollars", (None, "no-dollars")),
        ("x$$y", (None, "x$$y")),
        (None, (None, None)),
        (7, (None, None)),
    ],
)
def test_split_key(advertised: Any, split: tuple[str | None, str | None]) -> None:
    assert split_key(advertised) == split


def test_unserved_names_only_nodes_that_would_take_the_work() -> None:
    mine = adv("req", namespace="payments")
    others = [
        adv(namespace="payment"),  # the near miss
        adv(namespace="payments"),  # pairs: not unserved
        adv("pub-emitter", namespace="other"),  # not a responder
        {**adv(namespace="x"), "respondsTo": ["other"]},  # does not serve the type
        {**adv(namespace="y"), "respondsTo": ["orders::*"]},  # nor does this pattern
    ]
    assert unserved(mine, others, "rep", "validate", me=ME) == [
        "a responder named 'validation service' is on the mesh in namespace 'payment';"
        " this requester is in 'payments'"
    ]
    assert len(unserved(mine, others, "rep", None, me=ME)) == 3
    assert unserved(mine, others, "rep", "orders::new", me=ME)[-1] == (
        "a responder named 'validation service' is on the mesh in namespace 'y';"
        " this requester is in 'payments'"
    )
    assert (
        unserved(mine, others * 3, "rep", None, me=ME, limit=2)
        == (unserved(mine, others, "rep", None, me=ME)[:2])
    )


def test_a_mismatch_is_a_value() -> None:
    a, b = Mismatch("key", "k", "j"), Mismatch("key", "k", "j")
    assert a == b and hash(a) == hash(b) and a != Mismatch("key", "k", "x") and a != "key"
    assert repr(a) == "Mismatch('key', mine='k', theirs='j')"
    assert len({a, b, Mismatch("namespace", None, [1])}) == 2  # unhashable values hash too


@pytest.mark.parametrize(
    ("advertisement", "role"),
    [
        ({"axon_type": "rep"}, "responder"),
        ({"axon_type": "sockend"}, "sockend"),
        ({"axon_type": "odd"}, "odd"),
        ({"type": "monitor"}, "monitor"),
        ({"type": "service"}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_role_of(advertisement: dict[str, Any], role: str) -> None:
    assert role_of(advertisement) == role
