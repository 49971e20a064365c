"""Discovery options: cote's names in snake_case, resolved against the environment.

Design: :class:`DiscoveryOptions` is what users write; every field defaults to
``None``, meaning "not set here". :meth:`DiscoveryOptions.resolve` merges it
over cote's environment variables and cote's defaults (explicit option, then
environment, then default, the same precedence as cote's options builder) and
returns a frozen :class:`DiscoverySettings` with concrete values, checked once.
Times are in milliseconds, as in cote.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from coterie.settings import Settings

__all__ = [
    "DEFAULT_BROADCAST",
    "DEFAULT_PORT",
    "NO_ROUTE_HINT",
    "DiscoveryOptions",
    "DiscoverySettings",
    "EtcdSettings",
    "RedisSettings",
]

#: cote's discovery port.
DEFAULT_PORT = 12345
#: cote's broadcast address: the whole LAN. Tests and demos use 127.255.255.255.
DEFAULT_BROADCAST = "255.255.255.255"
#: What to change when hellos have no route (an offline laptop, a bare container).
NO_ROUTE_HINT = (
    "set COTE_BROADCAST_ADDRESS=127.255.255.255 to stay on this host, or give seeds "
    "(COTERIE_DISCOVERY_SEEDS) or Redis (COTE_DISCOVERY_REDIS_URL) to reach other hosts"
)
#: How often DNS seeds are resolved again, in ms.
DEFAULT_SEED_INTERVAL = 5000


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where Redis discovery publishes: host and port, or a URL."""

    host: str = "localhost"
    port: int = 6379
    url: str | None = None

    def connection_url(self) -> str:
        """The ``redis://`` URL to connect to."""
        return self.url or f"redis://{self.host}:{self.port}"


#: The key prefix under which etcd discovery registers nodes.
DEFAULT_ETCD_PREFIX = "/coterie"


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    """Where etcd discovery registers, and how it proves who it is.

    Attributes:
        endpoints: ``http://`` or ``https://`` client URLs of the etcd
            members; a call that fails moves on to the next.
        prefix: Every key of the mesh starts with it, so meshes may share a
            cluster (``/coterie``).
        ca: PEM file of the CA that signs etcd's server certificate
            (``--trusted-ca-file`` on a Kubernetes control plane); without
            it, ``https://`` endpoints are checked against the system's CAs.
        cert: PEM file of this client's certificate, for an etcd started
            with ``--client-cert-auth``.
        key: PEM file of ``cert``'s private key (leave it out when ``cert``
            holds both).
        user: etcd user name, for an etcd with authentication enabled
            (``etcdctl auth enable``): coterie logs in through the JSON
            gateway (``/v3/auth/authenticate``) and logs in again when etcd
            drops the token.
        password: ``user``'s password (never shown in ``repr``).
    """

    endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    prefix: str = DEFAULT_ETCD_PREFIX
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, urls: str, prefix: str | None = None, **access: str | None) -> EtcdSettings:
        """From comma-separated URLs (``http://`` may be left out), a prefix and ``access``.

        Args:
            urls: Client URLs, comma-separated.
            prefix: The key prefix (``/coterie`` when ``None``).
            **access: Any of ``ca``, ``cert``, ``key``, ``user`` and
                ``password``.
        """
        endpoints = tuple(
            (u if "://" in u else f"http://{u}").rstrip("/")
            for u in (part.strip() for part in urls.split(","))
            if u
        )
        return cls(endpoints, prefix or DEFAULT_ETCD_PREFIX, **access)

    @property
    def uses_tls(self) -> bool:
        """Whether a CA or a client certificate is given."""
        return bool(self.ca or self.cert or self.key)


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """Concrete discovery settings, as :meth:`DiscoveryOptions.resolve` returns them."""

    hello_interval: int = 2000
    check_interval: int = 4000
    node_timeout: int = 5000
    master_timeout: int = 6000
    address: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    broadcast: str = DEFAULT_BROADCAST
    multicast: str | None = None
    multicast_ttl: int = 1
    unicast: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    seed_interval: int = DEFAULT_SEED_INTERVAL
    key: str | None = None
    redis: RedisSettings | None = None
    redis_channel: str = "cote"
    etcd: EtcdSettings | None = None
    use_host_names: bool = False
    hostname: str = ""
    advertise_address: str | None = None
    ignore_process: bool = False
    fast_contact: bool = True
    goodbye: bool = True
    log: bool = True
    hello_logs: bool = True
    status_logs: bool = True
    max_datagram_size: int = 65507
    max_nodes: int = 10_000

    @property
    def scope(self) -> str:
        """Where hellos go, for log lines: the destination(s) or Redis."""
        if self.redis:
            return f"redis {self.redis.connection_url()}"
        if self.etcd:
            return f"etcd {','.join(self.etcd.endpoints)}"
        if self.seeds or self.unicast:
            return "unicast " + ",".join((*self.unicast, *self.seeds))
        if self.multicast:
            return f"multicast {self.multicast}"
        return f"broadcast {self.broadcast}"


@dataclass(slots=True)
class DiscoveryOptions:
    """How a component finds its peers. Unset fields come from the environment.

    Attributes:
        hello_interval: Milliseconds between hellos (cote: 2000,
            ``COTE_HELLO_INTERVAL``).
        check_interval: Milliseconds between checks for silent nodes (cote:
            4000, ``COTE_CHECK_INTERVAL``).
        node_timeout: A node silent this long is dropped (cote: 5000,
            ``COTE_NODE_TIMEOUT``).
        master_timeout: Master-election timeout (cote: 6000).
        address: The interface to use, by its local address: hellos go to
            its broadcast address (or multicast group) and say this address.
            The socket also listens on that broadcast address and on
            255.255.255.255, so binding an address does not deafen it to
            broadcasts. Default 0.0.0.0: every interface.
        port: Discovery UDP port (12345).
        broadcast: Broadcast address (``COTE_BROADCAST_ADDRESS``, else
            255.255.255.255). Use ``127.255.255.255`` for host scope.
        multicast: Multicast group instead of broadcast
            (``COTE_MULTICAST_ADDRESS``).
        multicast_ttl: Multicast TTL (1).
        unicast: Addresses to send hellos to instead of broadcasting (a list,
            or one comma-separated string).
        seeds: Host names or addresses whose A records get unicast hellos
            instead of broadcasting: a Kubernetes headless Service, or a
            static list (``COTERIE_DISCOVERY_SEEDS``, comma-separated). They
            are resolved again every ``seed_interval`` and define the mesh:
            hellos from addresses they do not list (nor ``unicast``) are
            ignored, and a node whose address leaves them is dropped.
        seed_interval: Milliseconds between seed resolutions (5000,
            ``COTERIE_DISCOVERY_SEED_INTERVAL``).
        advertise_address: The address peers should connect to, in every
            hello (``COTERIE_ADVERTISE_ADDRESS``): for NAT, containers, a pod
            IP. By default a hello carries the address of the interface it
            leaves from.
        key: Password that encrypts discovery datagrams (not the
            component's advertisement key).
        redis: Use Redis pub/sub instead of UDP: a ``redis://`` URL or a
            :class:`RedisSettings` (``COTE_DISCOVERY_REDIS_HOST`` / ``_PORT``
            / ``_URL``).
        redis_channel: ``"cote"`` (default): every node publishes and
            listens on cote's one channel, so each hears every hello of the
            mesh, Node peers included. ``"group"``: one channel per
            environment and namespace, so a node hears only its group;
            for meshes without Node peers
            (``COTERIE_DISCOVERY_REDIS_CHANNEL``).
        etcd: Register in etcd instead of sending hellos: comma-separated
            client URLs or an :class:`EtcdSettings`, which also holds a CA,
            a client certificate and a user and password
            (``COTERIE_DISCOVERY_ETCD``, ``COTERIE_DISCOVERY_ETCD_PREFIX``,
            ``_CA``, ``_CERT``, ``_KEY``, ``_USER``, ``_PASSWORD``).
            Node cote cannot take part. See :mod:`coterie.discovery.etcd`.
        use_host_names: Connect to peers by host name rather than source
            address (``COTE_USE_HOST_NAMES``; on with Redis).
        hostname: The host name this node announces (``DISCOVERY_HOSTNAME``).
        ignore_process: Ignore components of this same process
            (``COTE_IGNORE_PROCESS``).
        fast_contact: Beyond cote: answer a new node's hello at once, so first
            contact takes milliseconds rather than a hello interval.
        goodbye: Beyond cote: say goodbye on close so peers drop this node
            at once rather than after ``node_timeout``.
        max_nodes: Most nodes a process tracks at once (10,000). Hellos of
            further new nodes are ignored, with one warning, so a flood of
            forged ids cannot grow the table without bound.
    """

    hello_interval: int | None = None
    check_interval: int | None = None
    node_timeout: int | None = None
    master_timeout: int | None = None
    address: str | None = None
    port: int | None = None
    broadcast: str | None = None
    multicast: str | None = None
    multicast_ttl: int | None = None
    unicast: list[str] | str | None = None
    seeds: list[str] | str | None = None
    seed_interval: int | None = None
    key: str | None = None
    redis: str | RedisSettings | None = None
    redis_channel: str | None = None
    etcd: str | EtcdSettings | None = None
    use_host_names: bool | None = None
    hostname: str | None = None
    advertise_address: str | None = None
    ignore_process: bool | None = None
    fast_contact: bool | None = None
    goodbye: bool | None = None
    log: bool | None = None
    max_nodes: int | None = None

    def resolve(self, environ: Mapping[str, str] | None = None) -> DiscoverySettings:
        """Merge these options over the environment and cote's defaults.

        Args:
            environ: Environment to read (see :mod:`coterie.settings`);
                ``os.environ`` by default.

        Raises:
            ValueError: When a value is out of range or inconsistent.
        """
        from_env = Settings.from_environ(environ).discovery
        etcd_access = from_env.get("etcd_access", {})
        merged: dict[str, Any] = {
            k: v
            for k, v in from_env.items()
            if k not in ("redis", "etcd", "etcd_prefix", "etcd_access")
        }
        if "redis" in from_env:
            merged["redis"] = RedisSettings(**from_env["redis"])
        if "etcd" in from_env:
            merged["etcd"] = EtcdSettings.parse(
                from_env["etcd"], from_env.get("etcd_prefix"), **etcd_access
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                merged[f.name] = value
        hostname_given = bool(merged.get("hostname"))
        merged.setdefault("hostname", socket.gethostname())
        if isinstance(merged.get("redis"), str):
            merged["redis"] = RedisSettings(url=merged["redis"])
            merged.setdefault("use_host_names", True)
        if self.redis is not None and self.use_host_names is None:
            merged["use_host_names"] = True
        if isinstance(merged.get("etcd"), str):
            merged["etcd"] = EtcdSettings.parse(
                merged["etcd"], from_env.get("etcd_prefix"), **etcd_access
            )
        if merged.get("etcd") is not None and self.use_host_names is None:
            # As with Redis: no source address, so peers dial what a hello announces.
            merged["use_host_names"] = True
        for name in ("unicast", "seeds"):
            merged[name] = _address_list(merged.get(name))
        if merged.get("use_host_names") and hostname_given:
            # Peers connect by host name: one given on purpose is where to
            # reach this node, for coterie peers (its announced address) too.
            # Otherwise hellos carry the machine's name, as cote's do: cote
            # matches its links to nodes by the name it dialled, which Node
            # leaves empty for an IP address (docs/cote-differences.md).
            merged.setdefault("advertise_address", merged["hostname"])
        if not merged.get("advertise_address"):
            merged["advertise_address"] = None
        settings = DiscoverySettings(**merged)
        _check(settings)
        return settings


def _address_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(a.strip() for a in items if a.strip())


def _check(s: DiscoverySettings) -> None:
    for name in ("hello_interval", "check_interval", "node_timeout", "master_timeout"):
        value = getattr(s, name)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"discovery {name} must be a positive number of ms, got {value!r}")
    if s.node_timeout < s.check_interval:
        raise ValueError(
            f"node_timeout ({s.node_timeout} ms) must be at least check_interval "
            f"({s.check_interval} ms)"
        )
    if s.master_timeout < s.node_timeout:
        raise ValueError(
            f"master_timeout ({s.master_timeout} ms) must be at least node_timeout "
            f"({s.node_timeout} ms)"
        )
    if not isinstance(s.seed_interval, int) or s.seed_interval <= 0:
        raise ValueError(f"discovery seed_interval must be a positive number of ms, got "
                         f"{s.seed_interval!r}")  # fmt: skip
    if s.seeds and s.redis is not None:
        raise ValueError("seeds are for UDP discovery; Redis discovery needs none")
    if s.etcd is not None and s.redis is not None:
        raise ValueError("choose etcd or Redis discovery, not both")
    if s.seeds and s.etcd is not None:
        raise ValueError("seeds are for UDP discovery; etcd discovery needs none")
    if s.etcd is not None:
        if not s.etcd.endpoints:
            raise ValueError("etcd discovery needs at least one client URL, e.g. http://etcd:2379")
        for url in s.etcd.endpoints:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"etcd client URLs are http:// or https://, got {url!r}")
        if not s.etcd.prefix.startswith("/"):
            raise ValueError(f"the etcd prefix must start with '/', got {s.etcd.prefix!r}")
        _check_etcd_access(s.etcd)
    if s.redis_channel not in ("cote", "group"):
        raise ValueError(f"redis_channel is 'cote' or 'group', got {s.redis_channel!r}")
    if s.advertise_address is not None and s.advertise_address in ("0.0.0.0", "::"):
        raise ValueError(f"advertise_address must be reachable, got {s.advertise_address!r}")
    if not isinstance(s.max_nodes, int) or s.max_nodes < 1:
        raise ValueError(f"discovery max_nodes must be a positive count, got {s.max_nodes!r}")
    if not 0 < s.port < 65536:
        raise ValueError(f"discovery port must be 1-65535, got {s.port}")
    if s.multicast_ttl < 0 or s.multicast_ttl > 255:
        raise ValueError(f"multicast_ttl must be 0-255, got {s.multicast_ttl}")


def _check_etcd_access(etcd: EtcdSettings) -> None:
    if etcd.uses_tls:
        plain = [url for url in etcd.endpoints if url.startswith("http://")]
        if plain:
            raise ValueError(
                f"an etcd CA or client certificate needs https:// client URLs, got {plain[0]!r}"
            )
    if etcd.key and not etcd.cert:
        raise ValueError(
            "an etcd client key needs its certificate: set EtcdSettings cert "
            "(COTERIE_DISCOVERY_ETCD_CERT) too"
        )
    if (etcd.user is None) != (etcd.password is None):
        raise ValueError(
            "etcd user and password go together: set both EtcdSettings user and password "
            "(COTERIE_DISCOVERY_ETCD_USER and COTERIE_DISCOVERY_ETCD_PASSWORD)"
        )
    if etcd.user is not None and not etcd.user:
        raise ValueError("the etcd user name is empty: leave user out when etcd has no auth")
