"""DiscoveryOptions.resolve: explicit option, then environment, then cote's default.

``resolve`` takes the environment as a mapping, so nothing here touches
``os.environ``.
"""

from __future__ import annotations

import pytest

from coterie import DiscoveryOptions, RedisSettings
from coterie.discovery.options import DEFAULT_BROADCAST, DEFAULT_PORT

HOST = {"DISCOVERY_HOSTNAME": "box"}


def test_cote_defaults() -> None:
    s = DiscoveryOptions().resolve(HOST)
    assert (s.hello_interval, s.check_interval, s.node_timeout, s.master_timeout) == (
        2000,
        4000,
        5000,
        6000,
    )
    assert s.port == DEFAULT_PORT == 12345
    assert s.broadcast == DEFAULT_BROADCAST == "255.255.255.255"
    assert s.address == "0.0.0.0"
    assert s.multicast is None and s.unicast == () and s.key is None and s.redis is None
    assert s.use_host_names is False
    assert s.hostname == "box"
    assert s.scope == "broadcast 255.255.255.255"


def test_hostname_defaults_to_the_machine_name() -> None:
    import socket

    assert DiscoveryOptions().resolve({}).hostname == socket.gethostname()
    assert DiscoveryOptions(hostname="me").resolve(HOST).hostname == "me"


@pytest.mark.parametrize(
    ("var", "field"),
    [
        ("COTE_HELLO_INTERVAL", "hello_interval"),
        ("COTE_CHECK_INTERVAL", "check_interval"),
        ("COTE_NODE_TIMEOUT", "node_timeout"),
    ],
)
def test_interval_precedence(var: str, field: str) -> None:
    env = {**HOST, var: "4500"}
    assert getattr(DiscoveryOptions().resolve(HOST), field) != 4500
    assert getattr(DiscoveryOptions().resolve(env), field) == 4500
    explicit = DiscoveryOptions(**{field: 4200})  # type: ignore[arg-type]
    assert getattr(explicit.resolve(env), field) == 4200


def test_bad_interval_variable_names_itself() -> None:
    with pytest.raises(ValueError, match=r"COTE_HELLO_INTERVAL.*'fast'"):
        DiscoveryOptions().resolve({**HOST, "COTE_HELLO_INTERVAL": "fast"})


def test_broadcast_address_precedence() -> None:
    env = {**HOST, "COTE_BROADCAST_ADDRESS": "127.255.255.255"}
    assert DiscoveryOptions().resolve(env).broadcast == "127.255.255.255"
    assert DiscoveryOptions(broadcast="127.0.0.255").resolve(env).broadcast == "127.0.0.255"
    # An empty variable means unset.
    empty = {**HOST, "COTE_BROADCAST_ADDRESS": ""}
    assert DiscoveryOptions().resolve(empty).broadcast == "255.255.255.255"


def test_multicast_and_unicast() -> None:
    env = {**HOST, "COTE_MULTICAST_ADDRESS": "239.1.2.3"}
    s = DiscoveryOptions().resolve(env)
    assert s.multicast == "239.1.2.3" and s.scope == "multicast 239.1.2.3"
    assert DiscoveryOptions(multicast="239.9.9.9").resolve(env).multicast == "239.9.9.9"
    u = DiscoveryOptions(unicast=" 10.0.0.1, 10.0.0.2 ,").resolve(HOST)
    assert u.unicast == ("10.0.0.1", "10.0.0.2")
    assert DiscoveryOptions(unicast=["a", "b"]).resolve(HOST).unicast == ("a", "b")
    assert u.scope == "unicast 10.0.0.1,10.0.0.2"


def test_use_host_names_and_ignore_process_variables() -> None:
    s = DiscoveryOptions().resolve({**HOST, "COTE_USE_HOST_NAMES": "1"})
    assert s.use_host_names is True
    assert DiscoveryOptions(use_host_names=False).resolve(
        {**HOST, "COTE_USE_HOST_NAMES": "1"}
    ).use_host_names is False  # fmt: skip
    assert DiscoveryOptions().resolve({**HOST, "COTE_IGNORE_PROCESS": "true"}).ignore_process
    assert not DiscoveryOptions().resolve({**HOST, "COTE_IGNORE_PROCESS": "no"}).ignore_process


def test_log_variables() -> None:
    s = DiscoveryOptions().resolve(
        {**HOST, "COTE_LOG": "false", "COTE_HELLO_LOGS_ENABLED": "false"}
    )
    assert s.log is False and s.hello_logs is False and s.status_logs is True
    assert DiscoveryOptions(log=True).resolve({**HOST, "COTE_LOG": "false"}).log is True


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"COTE_DISCOVERY_REDIS_HOST": "redis.local"}, "redis://redis.local:6379"),
        ({"COTE_DISCOVERY_REDIS_PORT": "6380"}, "redis://localhost:6380"),
        (
            {"COTE_DISCOVERY_REDIS_HOST": "a", "COTE_DISCOVERY_REDIS_PORT": "7000"},
            "redis://a:7000",
        ),
        ({"COTE_DISCOVERY_REDIS_URL": "redis://r:1/2"}, "redis://r:1/2"),
    ],
)
def test_redis_variables_turn_on_redis_and_host_names(env: dict[str, str], expected: str) -> None:
    s = DiscoveryOptions().resolve({**HOST, **env})
    assert s.redis is not None
    assert s.redis.connection_url() == expected
    assert s.use_host_names is True
    assert s.scope == f"redis {expected}"


def test_redis_option_turns_on_host_names_unless_told_otherwise() -> None:
    s = DiscoveryOptions(redis="redis://x:1").resolve(HOST)
    assert s.redis == RedisSettings(url="redis://x:1") and s.use_host_names is True
    s = DiscoveryOptions(redis=RedisSettings(host="h"), use_host_names=False).resolve(HOST)
    assert s.redis is not None and s.redis.connection_url() == "redis://h:6379"
    assert s.use_host_names is False


def test_bad_redis_port_variable() -> None:
    with pytest.raises(ValueError, match="COTE_DISCOVERY_REDIS_PORT"):
        DiscoveryOptions().resolve({**HOST, "COTE_DISCOVERY_REDIS_PORT": "x"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DiscoveryOptions(hello_interval=0), "hello_interval must be a positive"),
        (DiscoveryOptions(check_interval=-5), "check_interval must be a positive"),
        (DiscoveryOptions(node_timeout=100, check_interval=200), "node_timeout"),
        (DiscoveryOptions(master_timeout=4500), "master_timeout"),
        (DiscoveryOptions(port=0), "port must be 1-65535"),
        (DiscoveryOptions(port=70000), "port must be 1-65535"),
        (DiscoveryOptions(multicast_ttl=256), "multicast_ttl"),
    ],
)
def test_validation_errors(options: DiscoveryOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options.resolve(HOST)


def test_env_values_are_validated_too() -> None:
    with pytest.raises(ValueError, match="node_timeout"):
        DiscoveryOptions().resolve({**HOST, "COTE_NODE_TIMEOUT": "1000"})


def test_short_test_timings_are_valid() -> None:
    s = DiscoveryOptions(
        hello_interval=100, check_interval=200, node_timeout=400, master_timeout=500, port=23456
    ).resolve(HOST)
    assert (s.hello_interval, s.check_interval, s.node_timeout, s.master_timeout, s.port) == (
        100,
        200,
        400,
        500,
        23456,
    )
