"""etcd discovery against a real etcd started for the test (tests/etcd_server.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import textwrap
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from coterie import DiscoveryOptions, EtcdSettings, Publisher, Requester, Responder, Subscriber
from coterie.protocol.groups import group_of, node_key
from tests.etcd_server import ETCD, EtcdServer
from tests.helpers import MS, ms, wait_for

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(ETCD is None, reason="etcd is not installed (etcd-server)"),
]


def etcd_discovery(url: str, **overrides: Any) -> DiscoveryOptions:
    """Fast timings (a 2 s lease, etcd's least) and no log lines."""
    fields: dict[str, Any] = {
        "etcd": url,
        "hostname": "127.0.0.1",
        "log": False,
        "hello_interval": ms(100),
        "check_interval": ms(200),
        "node_timeout": 2000,
        "master_timeout": 2500,
    }
    fields.update(overrides)
    return DiscoveryOptions(**fields)


def etcd_keys(url: str, prefix: str = "/coterie/") -> dict[str, Any]:
    """Every key under ``prefix`` with its decoded hello, and the store's revision."""
    end = bytearray(prefix.encode())
    end[-1] += 1
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(bytes(end)).decode()}).encode()  # fmt: skip
    with urllib.request.urlopen(url + "/v3/kv/range", body, timeout=2) as resp:
        answer = json.loads(resp.read())
    keys = {
        base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"]))
        for kv in answer.get("kvs", [])
    }
    return {"keys": keys, "revision": int(answer["header"]["revision"])}


def etcd_leases(url: str) -> list[str]:
    """The ids of the leases etcd holds."""
    with urllib.request.urlopen(url + "/v3/lease/leases", b"{}", timeout=2) as resp:
        return [lease["ID"] for lease in json.loads(resp.read()).get("leases", [])]


def test_etcd_options_and_environment() -> None:
    settings = DiscoveryOptions(etcd="etcd-a:2379, https://etcd-b:2379/").resolve({})
    assert settings.etcd == EtcdSettings(("http://etcd-a:2379", "https://etcd-b:2379"))
    assert settings.use_host_names and settings.scope.startswith("etcd ")
    env = {"COTERIE_DISCOVERY_ETCD": "http://10.0.0.5:2379", "COTERIE_DISCOVERY_ETCD_PREFIX": "/m"}
    from_env = DiscoveryOptions().resolve(env)
    assert from_env.etcd == EtcdSettings(("http://10.0.0.5:2379",), "/m")
    with pytest.raises(ValueError, match="etcd or Redis"):
        DiscoveryOptions(etcd="e:2379", redis="redis://r").resolve({})
    with pytest.raises(ValueError, match="http:// or https://"):
        DiscoveryOptions(etcd="unix:///run/etcd").resolve({})
    with pytest.raises(ValueError, match="prefix"):
        DiscoveryOptions(etcd=EtcdSettings(("http://e:2379",), "coterie")).resolve({})


# -- against a real etcd ------------------------------------------------------


async def test_nodes_join_serve_and_leave(etcd_server: EtcdServer) -> None:
    url = etcd_server.url
    disc = etcd_discovery(url)
    async with (
        Requester(name="etcd req", discovery=disc, timeout=5_000 * MS) as req,
        Publisher(name="bystander", discovery=disc) as bystander,
    ):
        removed = asyncio.Event()
        req.on_node(lambda event, node: removed.set() if event == "removed" else None)
        rep = Responder(name="etcd rep", discovery=disc)
        rep.on("sum", lambda r: sum(r["xs"]))
        await rep.start()
        assert await req.send({"type": "sum", "xs": [1, 2, 3]}) == 6
        key = node_key("/coterie", rep.advertisement, rep.id)
        assert key in etcd_keys(url)["keys"]
        assert [p.host_name for p in req.peers] == ["127.0.0.1"]
        await rep.close()
        # A node that closes deletes its key: peers drop it at once, long
        # before its lease (2 s) would run out.
        await asyncio.wait_for(removed.wait(), 1_000 * MS)
        assert key not in etcd_keys(url)["keys"]
        assert req.peers == []
        # A node with no link to it learns of the departure from etcd alone.
        watched = bystander.discovery
        assert watched is not None
        await wait_for(lambda: rep.id not in watched.nodes, 1_000 * MS)


async def test_idle_mesh_writes_nothing(etcd_server: EtcdServer) -> None:
    """In steady state hellos are not re-written: etcd's revision stays put.

    The components start at once, so they also share one lease: one that
    got a lease of its own that nobody renews would lose its key after the
    TTL, which changes the revision too.
    """
    disc = etcd_discovery(etcd_server.url)
    reps = [Responder(name=f"quiet rep {i}", discovery=disc) for i in range(3)]
    req = Requester(name="quiet req", discovery=disc, timeout=5_000 * MS)
    for rep in reps:
        rep.on("ping", lambda r: "pong")
    events: list[str] = []
    req.on_node(lambda e, n: events.append(e))
    try:
        await asyncio.gather(req.start(), *(rep.start() for rep in reps))
        await req.wait_connected(3, 5_000 * MS)
        assert len(etcd_leases(etcd_server.url)) == 1  # one process, one lease
        await asyncio.sleep(300 * MS)  # the last changes (master flags) settle
        before = etcd_keys(etcd_server.url)
        assert len(before["keys"]) == 4
        await asyncio.sleep(1_000 * MS)  # ten hello intervals
        assert etcd_keys(etcd_server.url)["revision"] == before["revision"]
        # ... and no node is timed out for silence, nor loses its key: the
        # lease, kept alive, vouches for them all.
        await asyncio.sleep(2_500 * MS)  # past node_timeout and the lease TTL (2 s)
        assert etcd_keys(etcd_server.url) == before
        assert len(req.peers) == 3 and "removed" not in events
        assert await req.send({"type": "ping"}) == "pong"
    finally:
        await asyncio.gather(req.close(), *(rep.close() for rep in reps))


async def test_a_changed_advertisement_is_written_and_closing_unregisters(
    etcd_server: EtcdServer,
) -> None:
    """The service hands the registry a hello only when it changed; closing removes the key."""
    url = etcd_server.url
    rep = Responder(name="grows", discovery=etcd_discovery(url))
    rep.on("first", lambda r: 1)
    await rep.start()
    try:
        key = node_key("/coterie", rep.advertisement, rep.id)

        def registered() -> dict[str, Any]:
            hello: dict[str, Any] = etcd_keys(url)["keys"].get(key, {})
            data: dict[str, Any] = hello.get("data", {})
            return data

        # Alone, it becomes the master (after master_timeout): that hello is written too.
        await wait_for(lambda: registered().get("isMaster"), 10_000 * MS, what="master")
        revision = etcd_keys(url)["revision"]
        await asyncio.sleep(500 * MS)  # five hello intervals, nothing new to say
        assert etcd_keys(url)["revision"] == revision
        assert registered()["advertisement"]["respondsTo"] == ["first"]
        rep.on("second", lambda r: 2)  # changes the advertisement in place: a new hello
        await wait_for(
            lambda: registered()["advertisement"]["respondsTo"] == ["first", "second"],
            what="rewritten",
        )
        assert etcd_keys(url)["revision"] == revision + 1
    finally:
        await rep.close()
    await wait_for(lambda: key not in etcd_keys(url)["keys"], what="unregistered")


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from coterie import DiscoveryOptions, Responder

    async def main():
        disc = DiscoveryOptions(etcd=sys.argv[1], hostname="127.0.0.1", log=False,
                                hello_interval=100, check_interval=200,
                                node_timeout=2000, master_timeout=2500)
        async with Responder(name="doomed", discovery=disc) as rep:
            rep.on("ping", lambda r: "pong")
            print(rep.id, flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_a_node_that_dies_is_gone_when_its_lease_expires(etcd_server: EtcdServer) -> None:
    url = etcd_server.url
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 20_000 * MS)
        doomed = line.decode().strip()
        async with Requester(
            name="watcher", discovery=etcd_discovery(url), timeout=5_000 * MS
        ) as req:
            assert await req.send({"type": "ping"}) == "pong"
            events: list[str] = []
            req.on_node(lambda e, n: events.append(e) if n.id == doomed else None)
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(child.wait(), 5_000 * MS)
            # Its link breaks at once, but the registry hands it back while its
            # key lives; the lease (2 s) runs out, and then it is gone for good.
            await wait_for(
                lambda: not any(k.endswith(doomed) for k in etcd_keys(url)["keys"]),
                6_000 * MS,
                what="the lease expired",
            )
            await wait_for(lambda: doomed not in req.discovery.nodes, 3_000 * MS)  # type: ignore[union-attr]
            settled = len(events)
            await asyncio.sleep(500 * MS)
            assert events[-1] == "removed" and len(events) == settled
            assert doomed not in [p.id for p in req.peers]
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_an_etcd_restart_heals(etcd_server: EtcdServer) -> None:
    url = etcd_server.url
    disc = etcd_discovery(url)
    async with Responder(name="before", discovery=disc) as rep:
        rep.on("who", lambda r: "before")
        async with Requester(name="req", discovery=disc, timeout=5_000 * MS) as req:
            assert await req.send({"type": "who"}) == "before"
            for wipe in (False, True):
                etcd_server.stop(wipe=wipe)
                await asyncio.sleep(300 * MS)
                # Links outlive the registry.
                assert await req.send({"type": "who"}) == "before"
                etcd_server.start()
                # Our keys are written again (after a wipe, under a new lease).
                await wait_for(
                    lambda: (
                        node_key("/coterie", rep.advertisement, rep.id) in etcd_keys(url)["keys"]
                    ),
                    10_000 * MS,
                    what="keys registered again",
                )
                async with Responder(name=f"after {wipe}", discovery=disc) as late:
                    late.on("late", lambda r: "late")
                    assert await asyncio.wait_for(req.send({"type": "late"}), 10) == "late"
                await wait_for(lambda: len(req.peers) == 1, 3_000 * MS, what="late one gone")
            assert await req.send({"type": "who"}) == "before"


async def test_nothing_leaks_across_prefixes(etcd_server: EtcdServer) -> None:
    url = etcd_server.url
    seen: dict[str, set[str]] = {}

    def watching(name: str, comp: Any) -> None:
        seen[name] = set()
        assert comp.discovery is not None
        comp.discovery.on(lambda e, n: seen[name].add(n.advertisement.get("name")))

    comps: list[Any] = []
    try:
        for name, env, ns, prefix in [
            ("a1", "prod", "a", "/coterie"),
            ("a2", "prod", "a", "/coterie"),
            ("b1", "prod", "b", "/coterie"),
            ("t1", "test", "a", "/coterie"),
            ("o1", "prod", "a", "/other"),
            ("o2", "prod", "a", "/other"),
        ]:
            disc = etcd_discovery(url, etcd=EtcdSettings((url,), prefix))
            comp = Publisher(name=name, namespace=ns, environment=env, discovery=disc)
            await comp.start()
            watching(name, comp)
            sub = Subscriber(name=name + "s", namespace=ns, environment=env, discovery=disc)
            await sub.start()
            watching(name + "s", sub)
            comps += [comp, sub]
        await asyncio.sleep(500 * MS)
        late = Subscriber(name="a3s", namespace="a", environment="prod",
                          discovery=etcd_discovery(url))  # fmt: skip
        await late.start()
        comps.append(late)
        await wait_for(lambda: "a3s" in seen["a1"], 5_000 * MS, what="a1 hears a3s")
        await asyncio.sleep(300 * MS)
        for comp in comps:
            group = {c.name for c in comps if group_key(c) == group_key(comp)} - {comp.name}
            # Waited for, as a loaded machine may be slow; a leak would stay.
            await wait_for(_knows(comp, group), 5_000 * MS, what=f"{comp.name} knows its group")
        # Every listener was on before a3s started: only its group heard of it.
        heard_a3s = {name for name, heard in seen.items() if "a3s" in heard}
        assert heard_a3s == {"a1", "a1s", "a2", "a2s"}
    finally:
        for comp in reversed(comps):
            await comp.close()


def _knows(comp: Any, names: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        nodes = comp.discovery.nodes.values()
        return {n.advertisement.get("name") for n in nodes} == names

    return check


def group_key(comp: Any) -> tuple[str, ...]:
    assert comp.discovery_settings is not None and comp.discovery_settings.etcd is not None
    return (comp.discovery_settings.etcd.prefix, *group_of(comp.advertisement))
