"""Every environment variable coterie reads, resolved once, from one mapping.

Design (after httpx's ``trust_env``): nothing else in coterie reads
``os.environ``, but for the two build switches ``COTERIE_NO_EXTENSIONS`` and
``COTERIE_REQUIRE_EXTENSIONS``, which ``coterie._native`` reads on import,
before any settings exist. docs/environment.md lists every variable.
:meth:`Settings.from_environ` parses a mapping, ``os.environ`` by default,
into a frozen :class:`Settings`, and checks every value once, so a bad
variable is one clear ``ValueError`` naming it. Components take
``environ=`` and pass it here, which is how tests inject an environment
without touching the process's.

Explicit arguments always win over these values; these win over cote's
defaults. Times are read in milliseconds, as cote's variables are, and kept in
the units their users want (seconds for requests and status reports, ms for
discovery, as cote's options).

The variables:

| variable | meaning |
| --- | --- |
| ``COTE_ENV`` | environment prefix of every advertisement key |
| ``COTE_REQUEST_TIMEOUT`` | default request bound, ms |
| ``COTE_STATUS_INTERVAL`` | status reports to monitors, ms |
| ``COTE_HELLO_INTERVAL``, ``COTE_CHECK_INTERVAL``, ``COTE_NODE_TIMEOUT`` | discovery timings, ms |
| ``COTE_BROADCAST_ADDRESS``, ``COTE_MULTICAST_ADDRESS`` | discovery scope |
| ``COTE_DISCOVERY_REDIS_HOST`` / ``_PORT`` / ``_URL`` | Redis discovery |
| ``COTERIE_DISCOVERY_REDIS_CHANNEL`` | ``group``: one Redis channel per environment and namespace |
| ``COTERIE_DISCOVERY_ETCD``, ``_ETCD_PREFIX`` | etcd discovery: client URLs, key prefix |
| ``COTERIE_DISCOVERY_ETCD_CA`` / ``_CERT`` / ``_KEY`` | etcd's CA, a client certificate, its key |
| ``COTERIE_DISCOVERY_ETCD_USER`` / ``_PASSWORD`` | an etcd user, when etcd has auth enabled |
| ``COTE_USE_HOST_NAMES``, ``COTE_IGNORE_PROCESS`` | node-discover switches |
| ``COTE_LOG``, ``COTE_HELLO_LOGS_ENABLED``, ``COTE_STATUS_LOGS_ENABLED`` | log lines |
| ``DISCOVERY_HOSTNAME`` | the host name announced |
| ``COTERIE_ADVERTISE_ADDRESS`` | the address peers connect to, in every hello |
| ``COTERIE_DISCOVERY_SEEDS`` | seeds: host names or addresses, comma-separated |
| ``COTERIE_DISCOVERY_SEED_INTERVAL`` | how often seeds are resolved again, ms |
| ``COTERIE_LINK_SECRET`` | a shared secret as the root of mutual TLS |
| ``COTERIE_LINK_CERT_LIFETIME`` | how long its certificates live, ms (two days) |
| ``COTERIE_TLS_CA`` / ``_CERT`` / ``_KEY`` | mutual TLS from PEM files |
| ``COTERIE_NGINX`` | the nginx binary (``NGINX``: its deprecated alias) |

``COTE_USE_HOST_NAMES`` is on for any value but an empty one and ``false``,
``0``, ``no`` or ``off`` (any case): cote turns it on for any non-empty value,
so ``false`` would have meant on.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coterie.tls import TLSFiles

__all__ = ["Settings"]

_DISCOVERY_MS = {
    "COTE_HELLO_INTERVAL": "hello_interval",
    "COTE_CHECK_INTERVAL": "check_interval",
    "COTE_NODE_TIMEOUT": "node_timeout",
}
_DISCOVERY_FLAGS = {
    "COTE_IGNORE_PROCESS": "ignore_process",
    "COTE_LOG": "log",
    "COTE_HELLO_LOGS_ENABLED": "hello_logs",
    "COTE_STATUS_LOGS_ENABLED": "status_logs",
}
_REDIS_PREFIX = "COTE_DISCOVERY_REDIS_"
_ETCD_ACCESS = {
    "COTERIE_DISCOVERY_ETCD_CA": "ca",
    "COTERIE_DISCOVERY_ETCD_CERT": "cert",
    "COTERIE_DISCOVERY_ETCD_KEY": "key",
    "COTERIE_DISCOVERY_ETCD_USER": "user",
    "COTERIE_DISCOVERY_ETCD_PASSWORD": "password",
}


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


_OFF = frozenset({"", "false", "0", "no", "off"})


def _on(value: str) -> bool:
    """A switch that is on unless empty or false/0/no/off (any case)."""
    return value.strip().lower() not in _OFF


def _nginx(env: Mapping[str, str]) -> tuple[str | None, str]:
    """``COTERIE_NGINX``, else the deprecated ``NGINX`` (with a warning)."""
    if env.get("COTERIE_NGINX"):
        return env["COTERIE_NGINX"], "COTERIE_NGINX"
    if env.get("NGINX"):
        warnings.warn(
            "NGINX is deprecated: name the nginx binary with COTERIE_NGINX",
            DeprecationWarning,
            stacklevel=3,
        )
        return env["NGINX"], "NGINX"
    return None, "COTERIE_NGINX"


def _ms(name: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of milliseconds, got {value!r}") from None


def _positive_seconds(name: str, value: str | None) -> float | None:
    if not value:
        return None
    try:
        ms = float(value)
    except ValueError:
        raise ValueError(f"{name} must be milliseconds, got {value!r}") from None
    if not ms > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return ms / 1000


def _lifetime(value: str | None) -> float | None:
    seconds = _positive_seconds("COTERIE_LINK_CERT_LIFETIME", value)
    if seconds is not None and not 1 <= seconds < math.inf:
        raise ValueError(
            "COTERIE_LINK_CERT_LIFETIME must be at least 1000 ms "
            f"(172800000 is two days, the default), got {value!r}"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Settings:
    """What the environment says, parsed and checked.

    Attributes:
        environment: ``COTE_ENV`` ("" when unset).
        link_secret: ``COTERIE_LINK_SECRET``, or ``None``.
        link_cert_lifetime: ``COTERIE_LINK_CERT_LIFETIME`` in seconds: how
            long a certificate rooted in the link secret is valid (renewed
            after two thirds of it), or ``None`` for the default, two days.
        tls_ca: ``COTERIE_TLS_CA``, or ``None``.
        tls_cert: ``COTERIE_TLS_CERT``, or ``None``.
        tls_key: ``COTERIE_TLS_KEY``, or ``None``.
        request_timeout: ``COTE_REQUEST_TIMEOUT`` in seconds, or ``None``.
        status_interval: ``COTE_STATUS_INTERVAL`` in seconds, or ``None``.
        discovery: Discovery fields the environment sets, by
            :class:`~coterie.discovery.options.DiscoveryOptions` field name
            (``redis`` as ``{"host", "port", "url"}``; ``etcd`` as the URLs,
            ``etcd_prefix``, and ``etcd_access`` with the CA, client
            certificate and key, user and password given).
        scope_chosen: Whether the environment picks a discovery scope
            (broadcast, multicast, seeds or Redis), for tools that default to host
            scope otherwise.
        nginx: ``COTERIE_NGINX`` (or the deprecated ``NGINX``), the nginx
            binary to run, or ``None``.
        nginx_variable: The variable ``nginx`` came from, for messages.
    """

    environment: str = ""
    link_secret: str | None = None
    link_cert_lifetime: float | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    request_timeout: float | None = None
    status_interval: float | None = None
    discovery: Mapping[str, Any] = field(default_factory=dict)
    scope_chosen: bool = False
    nginx: str | None = None
    nginx_variable: str = "COTERIE_NGINX"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse ``environ`` (``os.environ`` by default).

        Raises:
            ValueError: When a variable has a value out of its range; the
                message names it.
        """
        env = os.environ if environ is None else environ
        discovery: dict[str, Any] = {}
        for var, name in _DISCOVERY_MS.items():
            if var in env:
                discovery[name] = _ms(var, env[var])
        if env.get("COTE_BROADCAST_ADDRESS"):
            discovery["broadcast"] = env["COTE_BROADCAST_ADDRESS"]
        if env.get("COTE_MULTICAST_ADDRESS"):
            discovery["multicast"] = env["COTE_MULTICAST_ADDRESS"]
        if _on(env.get("COTE_USE_HOST_NAMES", "")):
            discovery["use_host_names"] = True
        for var, name in _DISCOVERY_FLAGS.items():
            if var in env:
                discovery[name] = _flag(env[var])
        redis = {
            k[len(_REDIS_PREFIX) :].lower(): v
            for k, v in env.items()
            if k.startswith(_REDIS_PREFIX)
        }
        if redis:
            discovery["redis"] = {
                "host": redis.get("host", "localhost"),
                "port": _ms(f"{_REDIS_PREFIX}PORT", redis.get("port", "6379")),
                "url": redis.get("url"),
            }
            discovery["use_host_names"] = True
        if env.get("COTERIE_DISCOVERY_REDIS_CHANNEL", "").strip():
            discovery["redis_channel"] = env["COTERIE_DISCOVERY_REDIS_CHANNEL"].strip()
        if env.get("COTERIE_DISCOVERY_ETCD", "").strip():
            discovery["etcd"] = env["COTERIE_DISCOVERY_ETCD"].strip()
            discovery["use_host_names"] = True
            if env.get("COTERIE_DISCOVERY_ETCD_PREFIX", "").strip():
                discovery["etcd_prefix"] = env["COTERIE_DISCOVERY_ETCD_PREFIX"].strip()
            # Paths and the user name are stripped; a password is taken as it is.
            access = {
                name: env[var] if name == "password" else env[var].strip()
                for var, name in _ETCD_ACCESS.items()
                if env.get(var, "").strip() or (name == "password" and var in env)
            }
            if access:
                discovery["etcd_access"] = access
        if env.get("DISCOVERY_HOSTNAME"):
            discovery["hostname"] = env["DISCOVERY_HOSTNAME"]
        if env.get("COTERIE_ADVERTISE_ADDRESS", "").strip():
            discovery["advertise_address"] = env["COTERIE_ADVERTISE_ADDRESS"].strip()
        if env.get("COTERIE_DISCOVERY_SEEDS", "").strip():
            discovery["seeds"] = env["COTERIE_DISCOVERY_SEEDS"]
        if "COTERIE_DISCOVERY_SEED_INTERVAL" in env:
            discovery["seed_interval"] = _ms(
                "COTERIE_DISCOVERY_SEED_INTERVAL", env["COTERIE_DISCOVERY_SEED_INTERVAL"]
            )
        nginx, nginx_variable = _nginx(env)
        return cls(
            environment=env.get("COTE_ENV", ""),
            link_secret=env.get("COTERIE_LINK_SECRET") or None,
            link_cert_lifetime=_lifetime(env.get("COTERIE_LINK_CERT_LIFETIME")),
            tls_ca=env.get("COTERIE_TLS_CA") or None,
            tls_cert=env.get("COTERIE_TLS_CERT") or None,
            tls_key=env.get("COTERIE_TLS_KEY") or None,
            request_timeout=_positive_seconds(
                "COTE_REQUEST_TIMEOUT", env.get("COTE_REQUEST_TIMEOUT")
            ),
            status_interval=_positive_seconds(
                "COTE_STATUS_INTERVAL", env.get("COTE_STATUS_INTERVAL")
            ),
            discovery=discovery,
            scope_chosen=bool(redis)
            or "etcd" in discovery
            or bool(env.get("COTE_BROADCAST_ADDRESS") or env.get("COTE_MULTICAST_ADDRESS"))
            or "seeds" in discovery,
            nginx=nginx,
            nginx_variable=nginx_variable,
        )

    def tls_files(self) -> TLSFiles | None:
        """The ``COTERIE_TLS_*`` files, or ``None`` when none is set.

        Raises:
            ValueError: When only some of the three are set.
        """
        given = (self.tls_ca, self.tls_cert, self.tls_key)
        if not any(given):
            return None
        if not all(given):
            raise ValueError("COTERIE_TLS_CA, COTERIE_TLS_CERT and COTERIE_TLS_KEY go together")
        assert self.tls_ca and self.tls_cert and self.tls_key
        return TLSFiles(self.tls_ca, self.tls_cert, self.tls_key)
