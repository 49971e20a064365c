"""Which nodes a gateway exposes, and the types and events they advertise."""

from __future__ import annotations

from typing import Any

import pytest

from coterie.protocol.pairing import (
    EXPOSED_ROLES,
    advertised_names,
    build_advertisement,
    exposes,
    lists_types,
    serves,
    takes,
)

GATEWAY = build_advertisement("sockend", name="gw", namespace=None, key="k", environment="")


def node(role: str, **fields: Any) -> dict[str, Any]:
    adv = build_advertisement(role, name="n", namespace=None, key="k", environment="")
    adv.update(fields)
    return adv


@pytest.mark.parametrize("role", ["rep", "pub-emitter"])
def test_a_gateway_exposes_responders_and_publishers_of_its_key(role: str) -> None:
    assert exposes(GATEWAY, node(role))
    assert exposes(GATEWAY, node(role, namespace="math"))
    assert exposes(GATEWAY, node(role, namespace=""))
    assert {"rep", "pub-emitter"} == EXPOSED_ROLES


@pytest.mark.parametrize("role", ["req", "sub-emitter", "sockend", "monitor", None])
def test_other_roles_are_not_exposed(role: Any) -> None:
    assert not exposes(GATEWAY, node("rep", axon_type=role))


def test_another_key_or_environment_is_not_exposed() -> None:
    assert not exposes(GATEWAY, node("rep", key="$$other"))
    other_env = build_advertisement("rep", name="n", namespace=None, key="k", environment="prod")
    assert not exposes(GATEWAY, other_env)


def test_link_security_must_match() -> None:
    assert not exposes(GATEWAY, node("rep", tls=True))
    assert not exposes({**GATEWAY, "tls": True}, node("rep"))
    assert exposes({**GATEWAY, "tls": True}, node("rep", tls=True))


@pytest.mark.parametrize("namespace", [1, ["ns"], {"n": 1}, True])
def test_a_namespace_that_is_not_a_string_is_not_exposed(namespace: Any) -> None:
    assert not exposes(GATEWAY, node("rep", namespace=namespace))


def test_advertised_names_are_the_non_empty_strings_of_a_list() -> None:
    assert advertised_names(["a", "b", "a"]) == {"a", "b"}
    assert advertised_names(["a", "", None, 3, ["b"], "*"]) == {"a", "*"}
    assert advertised_names("a") == frozenset()
    assert advertised_names(None) == frozenset()
    assert advertised_names({"a": 1}) == frozenset()


def test_only_a_responder_with_a_list_lists_its_types() -> None:
    assert lists_types({"respondsTo": []})
    assert lists_types({"respondsTo": ["a"]})
    assert not lists_types({})
    assert not lists_types({"respondsTo": "a"})
    assert not lists_types({"respondsTo": None})


def test_takes_a_listed_type_or_any_with_a_star() -> None:
    assert takes(frozenset({"a"}), "a")
    assert not takes(frozenset({"a"}), "b")
    assert takes(frozenset({"*"}), "b")
    assert not takes(frozenset(), "a")
    assert takes(frozenset({"orders::*"}), "orders::new")
    assert not takes(frozenset({"orders::*"}), "billing")
    assert not takes(frozenset({"orders::*"}), 5)


@pytest.mark.parametrize("types", [[], ["a"], ["*"], ["a", "b"], ["**"], ["a::*"]])
@pytest.mark.parametrize("request_type", ["a", "b", "*", "a::b", "a::b::c"])
def test_takes_agrees_with_serves_for_responders_that_list(
    types: list[str], request_type: str
) -> None:
    assert takes(advertised_names(types), request_type) == serves(
        {"respondsTo": types}, request_type
    )
