"""etcd discovery: a registry for meshes that outgrow broadcast.

Design. Each node is one key in etcd, under a lease its process keeps alive;
a node watches only the keys of its own environment and namespace. So in
steady state a node costs one lease keep-alive (shared by its whole process)
and nothing per peer: no periodic hellos cross the network, and a mesh of
many groups costs each node only its own group's changes.

- Keys: ``<prefix>/<environment>/<group>/<iid>``, the value the node's hello
  datagram exactly as the discovery service encodes it (encrypted when a
  discovery ``key`` is set). ``<group>`` is the namespace, percent-encoded,
  or ``*`` without one; observers (nodes without ``axon_type``: monitors,
  gateways) register under ``+``. The layout is a rule, in
  :mod:`coterie.protocol.groups` (``node_key``, ``watched_prefixes``,
  ``range_end``, ``lease_ttl``).
- Watches: a component watches its group's prefix and ``+`` (to report to
  monitors); an observer watches the whole environment.
- Liveness is the lease: a node that dies is removed by every peer when its
  lease expires (the discovery ``node_timeout``, rounded up to seconds); a
  node that closes deletes its key, and peers drop it at once. The node
  table's silence timeout is off for these nodes: nothing is ever silent.
- A hello is written only when it changes (its advertisement, its master
  flag), never per hello interval: the discovery service hands this medium
  a hello only then (:class:`~coterie.discovery.medium.Registry`), and the
  datagram stays opaque here. Each hello tick also re-delivers, from the
  watch's local copy, a registered node that a component had dropped (a link
  that broke), so it comes back as it would with the next hello elsewhere.
- One :class:`_Registry` per event loop, etcd endpoint list and prefix: the
  HTTP session, one lease and one watch per prefix are shared by every
  component of the process.
- Outages: a failed keep-alive or a broken watch is logged once, retried
  with the one back-off (up to 50 ms doubling to 2 s, with full jitter:
  :mod:`coterie.protocol.backoff`), and logged again when etcd
  answers. On recovery the lease is granted again if etcd lost it, every
  key of the process is written again, and each watch reads its prefix anew
  and reconciles: nodes gone meanwhile are dropped, new ones added.

Client: etcd's own gRPC gateway (the JSON API every etcd v3.4+ serves on its
client port, ``/v3/...``) over aiohttp, coterie's HTTP client already. The
Python etcd v3 clients on PyPI all need grpcio and protobuf, and are each
kept by one person; the gateway is etcd's, versioned with the server.

Node cote has no etcd discovery: a mesh with Node peers stays on broadcast
or Redis.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from coterie.discovery.interfaces import route_to
from coterie.discovery.medium import Encoder, ReceiveCallback, Registration
from coterie.discovery.options import DiscoverySettings, EtcdSettings
from coterie.discovery.shared import PerLoop
from coterie.protocol.groups import lease_ttl, node_key, range_end, watched_prefixes
from coterie.tls import _REFUSED_OURS
from coterie.transport.retry import Retry

if TYPE_CHECKING:
    import ssl

__all__ = ["EtcdAccessError", "EtcdError", "EtcdTransport"]

log = logging.getLogger("coterie.discovery")


_RETRY_FIRST = 0.05
_RETRY_MAX = 2.0
#: Bound on one gateway call (grant, put, range, keep-alive).
_CALL_TIMEOUT = 5.0
#: Most keys read from one prefix; the node table holds at most 10,000.
_RANGE_LIMIT = 10_000
#: Longest watch message accepted (a burst of events in one response).
_MAX_LINE = 64 * 1024 * 1024


class EtcdError(RuntimeError):
    """etcd answered with an error, or with something that is not its API."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _range_end(prefix: str) -> str:
    return base64.b64encode(range_end(prefix.encode())).decode()


# -- the gateway client ------------------------------------------------------


class _Gateway:
    """etcd's JSON gateway: unary calls and watch streams, over several endpoints.

    A call that cannot reach an endpoint moves to the next one for the
    following call; the caller retries. With a CA or a client certificate
    the session speaks TLS with them; with a user, it logs in once
    (``/v3/auth/authenticate``) and sends the token in every call's
    ``Authorization`` header, logging in again when etcd says the token is
    no longer valid (a restart, a password change, its TTL).
    """

    def __init__(self, settings: EtcdSettings) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._settings = settings
        self._endpoints = settings.endpoints
        self._current = 0
        self._token: str | None = None
        self._login_lock = asyncio.Lock()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_ssl_context(settings)),
            timeout=aiohttp.ClientTimeout(total=None, connect=_CALL_TIMEOUT),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )

    @property
    def endpoint(self) -> str:
        return self._endpoints[self._current]

    def rotate(self) -> None:
        self._current = (self._current + 1) % len(self._endpoints)

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One unary call; its JSON answer (``result`` unwrapped for stream RPCs)."""
        status, answer, url, used = await self._post(path, body)
        if self._token_refused(answer):
            # The token died (an etcd restart, a password change, its TTL):
            # log in again, once (unless a concurrent call did), and repeat.
            self._forget_token(used)
            status, answer, url, used = await self._post(path, body)
        if status != 200 or "error" in answer:
            raise _error(url, status, answer)
        result = answer.get("result", answer)
        if not isinstance(result, dict):
            raise EtcdError(f"etcd {url}: unexpected answer {answer!r:.200}")
        return result

    async def _post(
        self, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], str, str | None]:
        """One POST: etcd's status and answer, the URL, and the token it carried."""
        aiohttp = self._aiohttp
        headers = await self._headers()
        url = self.endpoint + path
        try:
            async with self.session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=_CALL_TIMEOUT)
            ) as resp:
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.rotate()
            _raise_refused(url, exc, self._settings)
            raise
        return resp.status, _parse(raw, url, resp.status), url, headers.get("Authorization")

    async def _headers(self) -> dict[str, str]:
        """The ``Authorization`` header, logging in first when there is no token."""
        if self._settings.user is None:
            return {}
        async with self._login_lock:
            if self._token is None:
                self._token = await self._login()
            return {"Authorization": self._token}

    async def _login(self) -> str:
        aiohttp, settings = self._aiohttp, self._settings
        url = self.endpoint + "/v3/auth/authenticate"
        body = {"name": settings.user, "password": settings.password}
        try:
            async with self.session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=_CALL_TIMEOUT)
            ) as resp:
                status, answer = resp.status, _parse(await resp.read(), url, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.rotate()
            _raise_refused(url, exc, settings)
            raise
        token = answer.get("token")
        if status != 200 or not isinstance(token, str) or not token:
            raise _error(url, status, answer)
        log.debug("etcd discovery logged in at %s as %s", self.endpoint, settings.user)
        return token

    def _forget_token(self, token: str | None) -> None:
        """Drop ``token`` so the next call logs in, unless it was replaced already."""
        if self._token == token:
            self._token = None

    def _token_refused(self, answer: dict[str, Any]) -> bool:
        return self._settings.user is not None and any(
            stale in str(answer.get("error", "")) for stale in _STALE_TOKEN
        )

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """A server stream (watch): one ``result`` object per message."""
        aiohttp = self._aiohttp
        headers = await self._headers()
        used = headers.get("Authorization")
        url = self.endpoint + path
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                if resp.status != 200:
                    answer = _parse(await resp.read(), url, resp.status)
                    raise _error(url, resp.status, answer)
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while (end := buffer.find(b"\n")) >= 0:
                        line, buffer = buffer[:end], buffer[end + 1 :]
                        if line.strip():
                            message = _parse(line, url)
                            if "error" in message:
                                raise EtcdError(f"etcd {url}: {message['error']}")
                            result = message.get("result", {})
                            reason = str(result.get("cancel_reason", ""))
                            if any(stale in reason for stale in _STALE_TOKEN):
                                self._forget_token(used)  # the next call logs in
                            yield result
                    if len(buffer) > _MAX_LINE:
                        raise EtcdError(f"etcd {url}: a watch message over {_MAX_LINE} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.rotate()
            _raise_refused(url, exc, self._settings)
            raise

    async def close(self) -> None:
        await self.session.close()


#: What etcd answers when a token it issued is no longer valid.
_STALE_TOKEN = ("invalid auth token", "revision of auth store is old")
_SETS_USER = "EtcdSettings user and password (COTERIE_DISCOVERY_ETCD_USER / _PASSWORD)"
_SETS_CERT = "EtcdSettings cert and key (COTERIE_DISCOVERY_ETCD_CERT / _KEY)"
#: etcd's own words, and what to change: (its message contains, ours).
_ADVICE = (
    ("user name is empty", f"etcd has authentication enabled: set {_SETS_USER}"),
    ("authentication failed", f"etcd refused the user name or password: check {_SETS_USER}"),
    ("authentication is not enabled",
     "etcd has authentication off: leave EtcdSettings user and password unset"),
    ("permission denied",
     "etcd refused a key to this user: grant its role readwrite on the discovery prefix "
     "(etcdctl role grant-permission ROLE --prefix=true readwrite PREFIX)"),
    ("CommonName of client",
     "etcd's JSON gateway refuses a client certificate with a Common Name while "
     "authentication is on: use a certificate without one, or one of the two"),
)  # fmt: skip


class EtcdAccessError(EtcdError):
    """etcd refused this client: its certificate, user or password (not retried at start)."""


def _error(url: str, status: int, answer: dict[str, Any]) -> EtcdError:
    """The error for a refused call, saying what to change when etcd's words tell."""
    said = str(answer.get("message") or answer.get("error") or answer)
    for words, advice in _ADVICE:
        if words in said:
            return EtcdAccessError(f"etcd {url}: {said}; {advice}")
    return EtcdError(f"etcd {url}: {status} {said}")


def _raise_refused(url: str, exc: BaseException, settings: EtcdSettings) -> None:
    """Raise :class:`EtcdAccessError` when ``exc`` is a TLS refusal, with what to change."""
    text = f"{exc} {exc.__cause__ or ''}"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        where = "EtcdSettings ca (COTERIE_DISCOVERY_ETCD_CA)"
        raise EtcdAccessError(
            f"etcd {url}: its certificate is not signed by the CA this side trusts, or not for "
            f"this host name: set {where} to the CA of etcd's --cert-file"
        ) from exc
    # The alerts of a peer that refuses this side's certificate, or its lack of one.
    refused = (*_REFUSED_OURS, "HANDSHAKE_FAILURE")
    if settings.cert is None and any(alert in text for alert in refused):
        raise EtcdAccessError(
            f"etcd {url} asks for a client certificate (--client-cert-auth): set {_SETS_CERT}"
        ) from exc
    if any(alert in text for alert in refused):
        raise EtcdAccessError(
            f"etcd {url} refused this client's certificate: it must be issued by etcd's "
            f"--trusted-ca-file: check {_SETS_CERT}"
        ) from exc


def _ssl_context(settings: EtcdSettings) -> ssl.SSLContext | bool:
    """The TLS context for ``settings`` (``True``: aiohttp's default checks).

    Raises:
        ValueError: When a PEM file cannot be read, naming it.
    """
    if not settings.uses_tls:
        return True
    import ssl

    try:
        context = ssl.create_default_context(cafile=settings.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot read the etcd CA file {settings.ca!r}: {exc}") from exc
    if settings.cert:
        try:
            context.load_cert_chain(settings.cert, settings.key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot read the etcd client certificate {settings.cert!r} and key "
                f"{settings.key!r}: {exc}"
            ) from exc
    return context


def _parse(raw: bytes, url: str, status: int = 200) -> dict[str, Any]:
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if status != 200:  # the gateway's own refusals are plain text
            return {"error": raw[:200].decode(errors="replace").strip()}
        raise EtcdError(f"etcd {url}: not JSON: {raw[:200]!r}") from None
    if not isinstance(answer, dict):
        raise EtcdError(f"etcd {url}: not a JSON object: {raw[:200]!r}")
    return answer


# -- one process's registry --------------------------------------------------


@dataclass(eq=False)
class _Watch:
    """One watched prefix: its keys as last read, and who hears of them."""

    prefix: str
    records: dict[str, bytes] = field(default_factory=dict)
    listeners: list[EtcdTransport] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event)


class _Registry:
    """What the components of one loop share for one etcd and prefix."""

    def __init__(self, key: tuple[Any, ...], settings: EtcdSettings, ttl: int) -> None:
        self.key = key
        self.settings = settings
        self.ttl = ttl
        self.gateway = _Gateway(settings)
        self.lease: int | None = None
        #: Every key this process registers, with its value (written again
        #: after an outage).
        self.own: dict[str, bytes] = {}
        self.watches: dict[str, _Watch] = {}
        self.users = 0
        self.lost = False
        self.reconnects = 0
        self._keeper: asyncio.Task[None] | None = None
        self._keeper_retry = Retry(_RETRY_FIRST, _RETRY_MAX)
        self._writes: dict[str, asyncio.Task[None]] = {}
        self._lease_lock = asyncio.Lock()

    # lease ------------------------------------------------------------------

    async def start(self) -> None:
        """Grant the lease (or fail: etcd unreachable at start) and keep it alive.

        Components of a process start concurrently: the first grants, the
        others wait for it, so the process holds one lease.
        """
        async with self._lease_lock:
            if self._keeper is None:
                await self._grant()
                await self._check_access()
                self._keeper = asyncio.create_task(self._keep_alive(), name="coterie-etcd-lease")

    async def _check_access(self) -> None:
        """Count the prefix's keys: etcd grants leases to anyone, reads only to its users.

        Raises:
            EtcdAccessError: When etcd wants a user, or this one may not read.
        """
        prefix = self.settings.prefix.rstrip("/") + "/"
        await self.gateway.call(
            "/v3/kv/range",
            {"key": _b64(prefix), "range_end": _range_end(prefix), "count_only": True},
        )

    async def _grant(self) -> None:
        answer = await self.gateway.call("/v3/lease/grant", {"TTL": self.ttl})
        self.lease = int(answer["ID"])

    async def _renew(self, stale: int | None) -> None:
        """Replace the lease etcd lost, once however many callers found it lost."""
        async with self._lease_lock:
            if self.lease == stale:
                log.warning("etcd lease %s expired; registering again", stale)
                await self._grant()
                await self._write_all()

    async def _keep_alive(self) -> None:
        retry = self._keeper_retry
        while True:
            if self.lost:
                await retry.pause()
            else:
                await asyncio.sleep(self.ttl / 3)
            try:
                answer = await self.gateway.call("/v3/lease/keepalive", {"ID": self.lease})
                if int(answer.get("TTL", 0)) <= 0:
                    # etcd forgot the lease (a restart without its data, or
                    # we were away past the TTL): register again.
                    await self._renew(self.lease)
                self._back()
                retry.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of etcd is retried with back-off
                self._lose("lease keep-alive", exc)

    def _lose(self, what: str, exc: BaseException) -> None:
        if not self.lost:
            self.lost = True
            log.warning(
                "etcd discovery at %s lost (%s: %s); retrying every %.2g s at most",
                self.gateway.endpoint,
                what,
                exc or type(exc).__name__,
                _RETRY_MAX,
            )

    def _back(self) -> None:
        if self.lost:
            self.lost = False
            self.reconnects += 1
            log.warning("etcd discovery at %s is back", self.gateway.endpoint)

    # own keys ---------------------------------------------------------------

    def put(self, key: str, value: bytes) -> None:
        """Register ``key`` (in the background; the latest value wins)."""
        self.own[key] = value
        self._write_soon(key)

    def delete(self, key: str) -> None:
        """Unregister ``key`` (in the background)."""
        self.own.pop(key, None)
        self._write_soon(key)

    def _write_soon(self, key: str) -> None:
        if key not in self._writes:
            task = asyncio.create_task(self._write(key), name="coterie-etcd-write")
            self._writes[key] = task

    async def _write(self, key: str) -> None:
        retry = Retry(_RETRY_FIRST, _RETRY_MAX)
        try:
            while True:
                value, lease = self.own.get(key), self.lease
                try:
                    if value is None:
                        await self.gateway.call("/v3/kv/deleterange", {"key": _b64(key)})
                    else:
                        body = {"key": _b64(key), "value": base64.b64encode(value).decode(),
                                "lease": lease}  # fmt: skip
                        await self.gateway.call("/v3/kv/put", body)
                except asyncio.CancelledError:
                    raise
                except EtcdError as exc:
                    if "lease not found" not in str(exc):
                        raise
                    await self._renew(lease)
                    continue
                # Any failure of etcd is retried with back-off.
                except Exception as exc:  # noqa: BLE001
                    self._lose("write", exc)
                    await retry.pause()
                    continue
                if self.own.get(key) is value:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("etcd discovery could not write %s", key)
        finally:
            self._writes.pop(key, None)

    async def _write_all(self) -> None:
        for key in list(self.own):
            self._write_soon(key)

    # watches ----------------------------------------------------------------

    async def watch(self, prefix: str, listener: EtcdTransport) -> dict[str, bytes]:
        """Hear of ``prefix``'s keys; returns them as read now."""
        watch = self.watches.get(prefix)
        if watch is None:
            watch = self.watches[prefix] = _Watch(prefix)
            watch.task = asyncio.create_task(self._follow(watch), name="coterie-etcd-watch")
        watch.listeners.append(listener)
        try:
            await asyncio.wait_for(asyncio.shield(watch.synced.wait()), _CALL_TIMEOUT * 2)
        except TimeoutError:
            raise OSError(
                f"etcd at {self.gateway.endpoint} did not answer a read of {prefix}"
            ) from None
        return dict(watch.records)

    async def unwatch(self, prefix: str, listener: EtcdTransport) -> None:
        watch = self.watches.get(prefix)
        if watch is None:
            return
        with contextlib.suppress(ValueError):
            watch.listeners.remove(listener)
        if not watch.listeners:
            del self.watches[prefix]
            if watch.task is not None:
                watch.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch.task

    async def _follow(self, watch: _Watch) -> None:
        """Read the prefix, then follow it; on any failure read it anew and go on."""
        retry = Retry(_RETRY_FIRST, _RETRY_MAX)
        while True:
            try:
                revision = await self._read(watch)
                self._back()
                retry.reset()
                body = {"create_request": {"key": _b64(watch.prefix),
                                           "range_end": _range_end(watch.prefix),
                                           "start_revision": revision + 1}}  # fmt: skip
                async for result in self.gateway.stream("/v3/watch", body):
                    if result.get("canceled"):
                        raise EtcdError(f"watch canceled: {result.get('cancel_reason', '')}")
                    for event in result.get("events", ()):
                        self._event(watch, event)
                raise EtcdError("the watch stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of etcd is retried with back-off
                self._lose("watch", exc)
                await retry.pause()

    async def _read(self, watch: _Watch) -> int:
        answer = await self.gateway.call(
            "/v3/kv/range",
            {"key": _b64(watch.prefix), "range_end": _range_end(watch.prefix),
             "limit": _RANGE_LIMIT},
        )  # fmt: skip
        if answer.get("more"):
            log.warning(
                "etcd prefix %s holds more than %d nodes; only the first are used",
                watch.prefix,
                _RANGE_LIMIT,
            )
        fresh = {
            _unb64(kv["key"]).decode(): _unb64(kv.get("value", "")) for kv in answer.get("kvs", ())
        }
        old, watch.records = watch.records, fresh
        for key in old.keys() - fresh.keys():
            self._tell(watch, key, None)
        for key, value in fresh.items():
            if old.get(key) != value:
                self._tell(watch, key, value)
        watch.synced.set()
        return int(answer["header"]["revision"])

    def _event(self, watch: _Watch, event: dict[str, Any]) -> None:
        kv = event.get("kv", {})
        key = _unb64(kv.get("key", "")).decode()
        if event.get("type") == "DELETE":
            if watch.records.pop(key, None) is not None:
                self._tell(watch, key, None)
            return
        value = _unb64(kv.get("value", ""))
        if watch.records.get(key) != value:
            watch.records[key] = value
            self._tell(watch, key, value)

    def _tell(self, watch: _Watch, key: str, value: bytes | None) -> None:
        for listener in list(watch.listeners):
            try:
                listener.heard(key, value)
            except Exception:
                log.exception("etcd discovery listener failed on %s", key)

    async def close(self) -> None:
        tasks = [t for t in (self._keeper, *self._writes.values()) if t is not None]
        tasks += [w.task for w in self.watches.values() if w.task is not None]
        # Pending deletes go out first, within a bound.
        if self._writes:
            await asyncio.wait(list(self._writes.values()), timeout=_CALL_TIMEOUT)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.gateway.call("/v3/lease/revoke", {"ID": self.lease}), _CALL_TIMEOUT
                )
        await self.gateway.close()


#: The registry of each event loop, by etcd settings (endpoints, prefix, TLS, user) and lease.
_REGISTRIES: PerLoop[_Registry] = PerLoop("etcd registry")


# -- the transport -------------------------------------------------------------


class EtcdTransport:
    """One component's etcd discovery (see the module docstring).

    The discovery service calls :meth:`attach` with the component's
    :class:`~coterie.discovery.medium.Registration` before :meth:`start`:
    the transport learns its id and advertisement (its key and group),
    reports departures with ``depart`` and asks ``knows`` which registered
    nodes the component dropped.
    """

    def __init__(self, settings: DiscoverySettings) -> None:
        if settings.etcd is None:
            raise ValueError("EtcdTransport needs DiscoveryOptions(etcd=...)")
        self._settings = settings
        self._etcd = settings.etcd
        self._member: Registration | None = None
        self._registry: _Registry | None = None
        self._receive: ReceiveCallback | None = None
        self._key: str | None = None
        self._prefixes: tuple[str, ...] = ()
        self._iids: dict[str, str] = {}
        #: The local address of the route to etcd, which hellos announce.
        self.local_address = "127.0.0.1"

    def attach(self, registration: Registration) -> None:
        """Serve this component (called once, before :meth:`start`)."""
        self._member = registration

    async def start(self, receive: ReceiveCallback) -> None:
        """Join the process's registry, read the group and start hearing it.

        Raises:
            ImportError: Without aiohttp (``coterie[etcd]``).
            OSError: When etcd cannot be reached at start.
        """
        member = self._member
        if member is None:
            raise RuntimeError("EtcdTransport.attach(registration) must come before start()")
        try:
            import aiohttp  # noqa: F401
        except ImportError as exc:  # pragma: no cover - optional extra
            raise ImportError(
                "etcd discovery needs the 'aiohttp' package: pip install 'coterie[etcd]'"
            ) from exc
        ttl = lease_ttl(self._settings.node_timeout)
        rkey = (self._etcd, ttl)
        registry = _REGISTRIES.setdefault(rkey, lambda: _Registry(rkey, self._etcd, ttl))
        registry.users += 1
        self._registry = registry
        try:
            await registry.start()
        except EtcdAccessError as exc:
            await self.close()
            raise PermissionError(f"etcd discovery: {exc}") from exc
        except Exception as exc:
            await self.close()
            raise OSError(f"etcd discovery cannot reach {self._etcd.endpoints}: {exc}") from exc
        await self._find_local_address()
        self._key = node_key(self._etcd.prefix, member.advertisement, member.iid)
        self._receive = receive
        self._prefixes = watched_prefixes(self._etcd.prefix, member.advertisement)
        try:
            for prefix in self._prefixes:
                records = await registry.watch(prefix, self)
                for key, value in records.items():
                    self.heard(key, value)
        except BaseException:
            await self.close()
            raise

    async def _find_local_address(self) -> None:
        found = await route_to(self._etcd.endpoints[0], 2379)
        if found is not None:
            self.local_address = found

    # what the registry tells ---------------------------------------------

    def heard(self, key: str, value: bytes | None) -> None:
        """A key of a watched prefix was written (``value``) or removed (``None``)."""
        if key == self._key or self._receive is None:
            return
        iid = key.rsplit("/", 1)[-1]
        if value is not None:
            self._iids[key] = iid
            self._receive(value, "0.0.0.0")
        elif self._iids.pop(key, None) is not None and self._member is not None:
            self._member.depart(iid)

    # what the service sends -------------------------------------------------

    def send(self, data: bytes) -> None:
        """Register ``data``, the component's new hello (an opaque datagram)."""
        self.send_each(lambda _address: data)

    def send_each(self, encode: Encoder) -> None:
        """Register ``encode(local_address)`` unless it is ``None`` (nothing changed).

        Also hands back, from the watch's copy, registered nodes that the
        component dropped meanwhile (see the module docstring).
        """
        registry, key = self._registry, self._key
        if registry is None or key is None:
            return
        data = encode(self.local_address)
        if data is not None:
            registry.put(key, data)
        self._restore()

    def _restore(self) -> None:
        member, registry = self._member, self._registry
        if member is None or registry is None or self._receive is None:
            return
        knows = member.knows
        for prefix in self._prefixes:
            watch = registry.watches.get(prefix)
            if watch is None:
                continue
            for key, value in list(watch.records.items()):
                iid = key.rsplit("/", 1)[-1]
                if key != self._key and not knows(iid):
                    self._iids[key] = iid
                    self._receive(value, "0.0.0.0")

    async def close(self) -> None:
        """Unregister, stop watching, and release the registry when last."""
        registry, self._registry = self._registry, None
        if registry is None:
            return
        if self._key is not None and self._key in registry.own:
            registry.delete(self._key)
        self._receive = None
        for prefix in self._prefixes:
            await registry.unwatch(prefix, self)
        registry.users -= 1
        if registry.users <= 0:
            _REGISTRIES.discard(registry.key, registry)
            await registry.close()

    @property
    def reconnects(self) -> int:
        """How many times etcd came back after an outage."""
        return self._registry.reconnects if self._registry is not None else 0
