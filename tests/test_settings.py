"""coterie.settings: every variable, read from one injectable mapping, checked once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coterie.discovery.options import DiscoveryOptions
from coterie.settings import Settings
from coterie.tls import TLSFiles


def test_an_empty_environment_is_all_defaults() -> None:
    s = Settings.from_environ({})
    assert s == Settings()
    assert (s.environment, s.request_timeout, s.tls_files(), s.scope_chosen) == (
        "",
        None,
        None,
        False,
    )


def test_the_mapping_given_is_the_only_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COTE_ENV", "from-the-process")
    assert Settings.from_environ({}).environment == ""
    assert Settings.from_environ().environment == "from-the-process"


def test_each_variable_lands_in_its_field() -> None:
    s = Settings.from_environ(
        {
            "COTE_ENV": "prod",
            "COTERIE_LINK_SECRET": "k",
            "COTE_REQUEST_TIMEOUT": "1500",
            "COTE_STATUS_INTERVAL": "250",
            "COTE_HELLO_INTERVAL": "100",
            "COTE_CHECK_INTERVAL": "200",
            "COTE_NODE_TIMEOUT": "400",
            "COTE_BROADCAST_ADDRESS": "127.255.255.255",
            "COTE_USE_HOST_NAMES": "1",
            "COTE_IGNORE_PROCESS": "true",
            "COTE_LOG": "false",
            "DISCOVERY_HOSTNAME": "box",
            "COTERIE_ADVERTISE_ADDRESS": " 198.18.0.1 ",
            "COTERIE_DISCOVERY_SEEDS": "a,b",
            "COTERIE_DISCOVERY_SEED_INTERVAL": "700",
            "COTERIE_NGINX": "/usr/sbin/nginx",
        }
    )
    assert (s.environment, s.link_secret, s.nginx) == ("prod", "k", "/usr/sbin/nginx")
    assert (s.request_timeout, s.status_interval) == (1.5, 0.25)
    assert s.discovery == {
        "hello_interval": 100,
        "check_interval": 200,
        "node_timeout": 400,
        "broadcast": "127.255.255.255",
        "use_host_names": True,
        "ignore_process": True,
        "log": False,
        "hostname": "box",
        "advertise_address": "198.18.0.1",
        "seeds": "a,b",
        "seed_interval": 700,
    }
    assert s.scope_chosen


def test_redis_variables_choose_redis_and_host_names() -> None:
    s = Settings.from_environ({"COTE_DISCOVERY_REDIS_HOST": "r", "COTE_DISCOVERY_REDIS_PORT": "7"})
    assert s.discovery["redis"] == {"host": "r", "port": 7, "url": None}
    assert s.discovery["use_host_names"] is True and s.scope_chosen


@pytest.mark.parametrize(
    ("variables", "chosen"),
    [
        ({"COTE_BROADCAST_ADDRESS": "127.255.255.255"}, True),
        ({"COTE_MULTICAST_ADDRESS": "239.1.2.3"}, True),
        ({"COTERIE_DISCOVERY_SEEDS": "seed"}, True),
        ({"COTERIE_DISCOVERY_SEEDS": "  "}, False),
        ({"COTE_HELLO_INTERVAL": "100"}, False),
    ],
)
def test_scope_chosen(variables: dict[str, str], chosen: bool) -> None:
    assert Settings.from_environ(variables).scope_chosen is chosen


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("COTE_HELLO_INTERVAL", "2s", "COTE_HELLO_INTERVAL must be a whole number of milliseconds"),
        ("COTE_DISCOVERY_REDIS_PORT", "x", "COTE_DISCOVERY_REDIS_PORT must be a whole number"),
        ("COTERIE_DISCOVERY_SEED_INTERVAL", "1.5", "COTERIE_DISCOVERY_SEED_INTERVAL must be"),
        ("COTE_REQUEST_TIMEOUT", "soon", "COTE_REQUEST_TIMEOUT must be milliseconds, got 'soon'"),
        ("COTE_REQUEST_TIMEOUT", "0", "COTE_REQUEST_TIMEOUT must be positive"),
        ("COTE_STATUS_INTERVAL", "-5", "COTE_STATUS_INTERVAL must be positive"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_environ({variable: value})


def test_tls_files_go_together() -> None:
    whole = {"COTERIE_TLS_CA": "ca", "COTERIE_TLS_CERT": "c", "COTERIE_TLS_KEY": "k"}
    assert Settings.from_environ(whole).tls_files() == TLSFiles("ca", "c", "k")
    with pytest.raises(ValueError, match="go together"):
        Settings.from_environ({"COTERIE_TLS_CA": "ca"}).tls_files()


def test_explicit_options_win_over_the_environment_which_wins_over_defaults() -> None:
    env = {"COTE_HELLO_INTERVAL": "150", "COTE_NODE_TIMEOUT": "5500"}
    resolved = DiscoveryOptions(hello_interval=50).resolve(env)
    assert (resolved.hello_interval, resolved.node_timeout) == (50, 5500)
    assert DiscoveryOptions().resolve({}).hello_interval == 2000  # cote's default


def test_the_other_scopes_land_in_their_fields() -> None:
    s = Settings.from_environ(
        {
            "COTE_MULTICAST_ADDRESS": "239.1.2.3",
            "COTERIE_DISCOVERY_REDIS_CHANNEL": " group ",
            "COTERIE_DISCOVERY_ETCD": " http://198.18.0.9:2379 ",
            "COTERIE_DISCOVERY_ETCD_PREFIX": " /mesh/ ",
        }
    )
    assert s.discovery == {
        "multicast": "239.1.2.3",
        "redis_channel": "group",
        "etcd": "http://198.18.0.9:2379",
        "use_host_names": True,
        "etcd_prefix": "/mesh/",
    }
    assert s.scope_chosen
    assert Settings.from_environ({"COTERIE_DISCOVERY_ETCD": "http://e:2379"}).scope_chosen
    assert "etcd_prefix" not in Settings.from_environ({"COTERIE_DISCOVERY_ETCD": "e"}).discovery
    assert Settings.from_environ({"COTERIE_DISCOVERY_ETCD_PREFIX": "/p/"}).discovery == {}


def test_a_redis_url_and_the_default_port() -> None:
    by_url = Settings.from_environ({"COTE_DISCOVERY_REDIS_URL": "redis://r:7/0"})
    assert by_url.discovery["redis"] == {"host": "localhost", "port": 6379, "url": "redis://r:7/0"}


@pytest.mark.parametrize(
    ("variable", "value", "seconds"),
    [("COTE_REQUEST_TIMEOUT", "1", 0.001), ("COTE_STATUS_INTERVAL", "0.5", 0.0005)],
)
def test_any_positive_milliseconds_are_taken(variable: str, value: str, seconds: float) -> None:
    s = Settings.from_environ({variable: value})
    assert getattr(s, variable.removeprefix("COTE_").lower()) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "given",
    [
        {"COTERIE_TLS_CA": "ca"},
        {"COTERIE_TLS_CERT": "c"},
        {"COTERIE_TLS_KEY": "k"},
        {"COTERIE_TLS_CA": "ca", "COTERIE_TLS_CERT": "c"},
        {"COTERIE_TLS_CERT": "c", "COTERIE_TLS_KEY": "k"},
    ],
)
def test_any_missing_tls_file_is_an_error_naming_all_three(given: dict[str, str]) -> None:
    with pytest.raises(
        ValueError, match=r"^COTERIE_TLS_CA, COTERIE_TLS_CERT and COTERIE_TLS_KEY go together$"
    ):
        Settings.from_environ(given).tls_files()


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", "Off", " off ", ""])
def test_use_host_names_off_values_leave_it_off(value: str) -> None:
    s = Settings.from_environ({"COTE_USE_HOST_NAMES": value})
    assert "use_host_names" not in s.discovery


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "anything"])
def test_use_host_names_other_values_turn_it_on(value: str) -> None:
    s = Settings.from_environ({"COTE_USE_HOST_NAMES": value})
    assert s.discovery["use_host_names"] is True


def test_nginx_old_variable_still_works_and_warns() -> None:
    with pytest.warns(DeprecationWarning, match="COTERIE_NGINX"):
        s = Settings.from_environ({"NGINX": "/opt/nginx"})
    assert (s.nginx, s.nginx_variable) == ("/opt/nginx", "NGINX")


def test_coterie_nginx_wins_over_the_old_variable(recwarn: pytest.WarningsRecorder) -> None:
    s = Settings.from_environ({"NGINX": "/old", "COTERIE_NGINX": "/new"})
    assert (s.nginx, s.nginx_variable) == ("/new", "COTERIE_NGINX")
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_docs_environment_lists_every_variable_coterie_reads() -> None:
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "environment.md").read_text()
    names: set[str] = set()
    for module in ("settings.py", "_native.py"):
        source = (root / "src" / "coterie" / module).read_text()
        names |= set(re.findall(r'"((?:COTE|COTERIE|DISCOVERY)_[A-Z_]*|NGINX)"', source))
    assert len(names) > 30
    assert sorted(n for n in names if n not in doc) == []
