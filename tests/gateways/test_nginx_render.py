"""nginx configuration rendering (pure) and checking it with the real ``nginx -t``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from coterie.gateways.announce import http_advertisement
from coterie.gateways.nginx import (
    NginxError,
    NginxServer,
    Server,
    http_servers,
    parse_listen,
    render_config,
)
from coterie.protocol.nodes import Node
from tests.e2e.support import NGINX, needs_nginx
from tests.helpers import MS, free_port


def _upstream_block(config: str) -> list[str]:
    lines = config.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("upstream "))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "}")
    return [line.strip() for line in lines[start + 1 : end] if not line.strip().startswith("#")]


def test_no_server_renders_a_placeholder_marked_down() -> None:
    config = render_config("validation-service", [], listen=("127.0.0.1", 8080), prefix="/p")
    assert _upstream_block(config) == ["least_conn;", "server 127.0.0.1:1 down;"]
    assert "listen 127.0.0.1:8080;" in config
    assert "proxy_pass http://validation-service;" in config


def test_servers_are_sorted_deduplicated_and_least_conn() -> None:
    servers = [Server("127.0.0.1", 9002), Server("127.0.0.1", 9001), Server("127.0.0.1", 9002)]
    config = render_config("svc", servers, listen=("127.0.0.1", 8080), prefix="/p")
    assert _upstream_block(config) == [
        "least_conn;",
        "server 127.0.0.1:9001 max_fails=1 fail_timeout=1s;",
        "server 127.0.0.1:9002 max_fails=1 fail_timeout=1s;",
    ]


def test_hosts_from_the_network_cannot_inject_configuration() -> None:
    servers = [
        Server("127.0.0.1; include /etc/passwd", 80),
        Server("evil host", 80),
        Server("127.0.0.1", 0),
        Server("127.0.0.1", 70000),
        Server("::1", 9000),
        Server("validator.local", 9001),
    ]
    config = render_config("a b;c", servers, listen=("127.0.0.1", 8080), prefix="/p")
    assert _upstream_block(config) == [
        "least_conn;",
        "server [::1]:9000 max_fails=1 fail_timeout=1s;",
        "server validator.local:9001 max_fails=1 fail_timeout=1s;",
    ]
    assert "upstream a_b_c {" in config
    assert "passwd" not in config


def test_generation_and_prefix_paths_are_written() -> None:
    config = render_config("s", [], listen=("127.0.0.1", 1), prefix="/tmp/x y", generation=7)
    assert 'add_header X-Coterie-Generation "7" always;' in config
    assert 'pid "/tmp/x y/nginx.pid";' in config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("8080", ("127.0.0.1", 8080)),
        ("[::1]:81", ("::1", 81)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "127.0.0.1:0", "1.2.3.4:99999", "a b:80"])
def test_parse_listen_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)


def _node(iid: str, adv: dict[str, object], address: str = "127.0.0.1") -> Node:
    return Node(id=iid, process_id="p", host_name="h", address=address, advertisement=dict(adv))


def test_http_servers_picks_announced_instances_of_the_service_only() -> None:
    nodes = [
        _node("a", http_advertisement("validation-service", 9001)),
        _node("b", http_advertisement("validation-service", 9002, host="10.0.0.5")),
        _node("c", http_advertisement("other-service", 9003)),
        _node("d", {"name": "validation-service", "port": 9004, "axon_type": "rep"}),
        # No source address (Redis) and none announced: its host name, as cote dials.
        _node("e", http_advertisement("validation-service", 9005), address="0.0.0.0"),
    ]
    assert http_servers(nodes, "validation-service") == {
        Server("127.0.0.1", 9001),
        Server("10.0.0.5", 9002),
        Server("h", 9005),
    }


def test_http_servers_follows_only_its_own_environment() -> None:
    def announced(iid: str, port: int, environment: str) -> Node:
        adv = {**http_advertisement("validation-service", port), "key": f"{environment}$$"}
        return _node(iid, adv)

    nodes = [announced("a", 9001, ""), announced("b", 9002, "demo-3003:")]
    assert http_servers(nodes, "validation-service") == {Server("127.0.0.1", 9001)}
    assert http_servers(nodes, "validation-service", environment="demo-3003") == {
        Server("127.0.0.1", 9002)
    }


def test_http_advertisement_marks_http_and_refuses_bad_input() -> None:
    adv = http_advertisement("svc", 8101)
    assert adv["type"] == "http" and adv["http"] is True and adv["port"] == 8101
    assert "axon_type" not in adv  # no coterie component pairs with it
    with pytest.raises(ValueError, match="port"):
        http_advertisement("svc", 0)
    with pytest.raises(ValueError, match="name"):
        http_advertisement("", 80)


@needs_nginx
@pytest.mark.nginx
@pytest.mark.parametrize("servers", [[], [Server("127.0.0.1", 9001), Server("::1", 9002)]])
def test_real_nginx_accepts_rendered_configs(tmp_path: Path, servers: list[Server]) -> None:
    assert NGINX is not None
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "nginx.conf"
    listen = ("127.0.0.1", free_port())
    conf.write_text(render_config("svc", servers, listen=listen, prefix=tmp_path))
    result = subprocess.run(
        [NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log"), "-t"],
        capture_output=True,
        text=True,
        timeout=10_000 * MS,
    )
    assert result.returncode == 0, result.stderr


@needs_nginx
@pytest.mark.nginx
async def test_a_rejected_configuration_never_replaces_the_one_in_place(tmp_path: Path) -> None:
    nginx = NginxServer(tmp_path)
    listen = ("127.0.0.1", free_port())
    good = render_config("svc", [], listen=listen, prefix=tmp_path)
    with pytest.raises(NginxError, match="rejected"):
        await nginx.start(good.replace("least_conn;", "least_conn"), listen)
    assert not nginx.conf.exists() and nginx.process is None
    await nginx.start(good, listen, timeout=10_000 * MS)
    try:
        with pytest.raises(NginxError, match="rejected"):
            await nginx.reload("bogus;")
        assert nginx.conf.read_text() == good
        assert nginx.reloads == 0
        assert nginx.process is not None and nginx.process.returncode is None
    finally:
        await nginx.stop()


def test_missing_nginx_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NginxError, match=r"nginx binary \S*no-such-nginx does not exist"):
        NginxServer(tmp_path, binary=str(tmp_path / "no-such-nginx"))
