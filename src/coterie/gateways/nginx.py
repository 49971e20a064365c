"""nginx upstreams driven by coterie discovery: the seed's Consul pipeline, in one piece.

Design: three layers, the first pure.

- :func:`render_config` turns an upstream name, a list of servers and a listen
  address into a complete nginx configuration (least_conn upstream). With no
  server it renders a placeholder that is marked ``down``, so nginx answers
  502 Bad Gateway, as the seed's nginx did while no validator ran. Hosts and
  ports come from the network, so they are checked before they reach the file.
- :class:`NginxServer` runs a real nginx binary with a private prefix
  directory (its own pid file, logs and temp paths; no root needed): start,
  reload with ``nginx -s reload`` after ``nginx -t``, stop.
- :class:`UpstreamWatcher` listens to discovery for HTTP services announced
  under a name (see :mod:`coterie.gateways.announce`) and, on every change,
  re-renders and reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coterie.discovery.options import DiscoveryOptions
from coterie.discovery.service import Discovery
from coterie.errors import CoterieError
from coterie.gateways.process import die_with_parent, stop_process
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import build_advertisement, environment_prefix
from coterie.settings import Settings

__all__ = [
    "PLACEHOLDER",
    "NginxError",
    "NginxServer",
    "Server",
    "UpstreamWatcher",
    "find_nginx",
    "http_servers",
    "parse_listen",
    "render_config",
]

log = logging.getLogger("coterie.nginx")

#: Where nginx lives when it is not on PATH (Debian puts it in /usr/sbin).
_NGINX_CANDIDATES = (
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/nginx/sbin/nginx",
    "/opt/homebrew/bin/nginx",
    "/usr/local/bin/nginx",
)

#: The placeholder upstream server: port 1 on loopback, marked down.
PLACEHOLDER = ("127.0.0.1", 1)

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_UPSTREAM_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class NginxError(CoterieError, RuntimeError):
    """nginx refused a configuration or could not be started or reloaded."""


def find_nginx(explicit: str | None = None) -> str | None:
    """The nginx binary: ``explicit``, ``$COTERIE_NGINX``, PATH, then the usual sbin paths."""
    for candidate in (explicit, Settings.from_environ().nginx):
        if candidate:
            found = shutil.which(candidate)
            return found
    found = shutil.which("nginx")
    if found:
        return found
    for path in _NGINX_CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _why_not_found(explicit: str | None) -> str:
    """Why :func:`find_nginx` found nothing, in one line."""
    settings = Settings.from_environ()
    given = explicit or settings.nginx
    if not given:
        return (
            "nginx is not installed (looked on PATH and in /usr/sbin); install it "
            "with `sudo apt-get install nginx-light` or `brew install nginx`"
        )
    source = "" if explicit else f"${settings.nginx_variable}: "
    if os.sep not in given and "/" not in given:
        return f"{source}nginx binary {given!r} is not on PATH"
    if not os.path.exists(given):
        return f"{source}nginx binary {given} does not exist"
    if os.path.isdir(given):
        return f"{source}nginx binary {given} is a directory, not a program"
    return f"{source}nginx binary {given} is not executable"


@dataclass(frozen=True, order=True, slots=True)
class Server:
    """One upstream server."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"8080"`` to ``(host, port)``.

    Raises:
        ValueError: For anything else.
    """
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"listen address must be HOST:PORT or PORT, got {listen!r}") from None
    if not 0 < port < 65536 or not _valid_host(host):
        raise ValueError(f"listen address must be HOST:PORT or PORT, got {listen!r}")
    return host, port


def render_config(
    upstream: str,
    servers: Iterable[Server],
    *,
    listen: tuple[str, int],
    prefix: str | os.PathLike[str],
    proxy_timeout: float = 10.0,
    generation: int = 0,
) -> str:
    """A complete nginx configuration proxying everything to one upstream.

    Args:
        upstream: Upstream (service) name.
        servers: The instances; invalid hosts or ports are left out.
        listen: Where nginx listens.
        prefix: Private directory for the pid file, logs and temp files.
        proxy_timeout: Seconds nginx waits for an upstream to answer.
        generation: A counter written into the file and into an
            ``X-Coterie-Generation`` header, to tell reloads apart.

    Returns:
        The configuration text.
    """
    name = _UPSTREAM_NAME.sub("_", upstream) or "upstream"
    prefix_path = Path(prefix)
    valid = sorted(
        {
            s
            for s in servers
            if _valid_host(s.host) and 0 < s.port < 65536 and s != Server(*PLACEHOLDER)
        }
    )
    if valid:
        lines = [f"        server {s} max_fails=1 fail_timeout=1s;" for s in valid]
    else:
        lines = [
            "        # nothing announced: a placeholder marked down, so nginx answers 502",
            f"        server {Server(*PLACEHOLDER)} down;",
        ]
    listen_host, listen_port = listen
    listen_text = str(Server(listen_host, listen_port))
    connect = max(1, round(min(proxy_timeout, 2.0)))
    read = max(1, round(proxy_timeout))
    temp = prefix_path / "temp"

    def q(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join(
        [
            f"# Rendered by coterie nginx for {upstream!r} (generation {generation}).",
            "# Rewritten on every discovery change; do not edit.",
            "daemon off;",
            "worker_processes 1;",
            f"pid {q(prefix_path / 'nginx.pid')};",
            f"error_log {q(prefix_path / 'error.log')} warn;",
            "events { worker_connections 512; }",
            "http {",
            "    access_log off;",
            f"    client_body_temp_path {q(temp / 'body')};",
            f"    proxy_temp_path {q(temp / 'proxy')};",
            f"    fastcgi_temp_path {q(temp / 'fastcgi')};",
            f"    uwsgi_temp_path {q(temp / 'uwsgi')};",
            f"    scgi_temp_path {q(temp / 'scgi')};",
            f"    upstream {name} {{",
            "        least_conn;",
            *lines,
            "    }",
            "    server {",
            f"        listen {listen_text};",
            "        location / {",
            f"            proxy_pass http://{name};",
            f"            proxy_connect_timeout {connect}s;",
            f"            proxy_read_timeout {read}s;",
            "            proxy_next_upstream error timeout;",
            f'            add_header X-Coterie-Generation "{generation}" always;',
            "        }",
            "    }",
            "}",
            "",
        ]
    )


def http_servers(
    nodes: Iterable[Node], service: str, *, use_host_names: bool = False, environment: str = ""
) -> set[Server]:
    """The HTTP instances of ``service`` among discovered nodes.

    An instance is a node whose advertisement has ``"http": true``, the
    service's ``name``, a port and the same cote environment (``COTE_ENV``,
    the part of its ``key`` before ``$$``; none without a key): what
    ``coterie announce`` sends. Its host is the advertisement's ``host`` when
    given, else the hello's source.
    """
    found: set[Server] = set()
    for node in nodes:
        adv = node.advertisement
        if adv.get("http") is not True or adv.get("name") != service or node.port is None:
            continue
        key = adv.get("key")
        its_environment = key.split("$$", 1)[0] if isinstance(key, str) else ""
        if its_environment != environment_prefix(environment):
            continue
        host = adv.get("host")
        if not isinstance(host, str) or not host:
            host = node.connect_host(use_host_names)
        if _valid_host(host):
            found.add(Server(host, node.port))
        else:
            log.warning("ignoring %s instance with bad host %r", service, host)
    return found


async def _run(*argv: str, timeout: float = 10.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NginxError(f"{' '.join(argv)} did not finish within {timeout:g} s") from None
    return proc.returncode or 0, out.decode(errors="replace").strip()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _bind_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on (as nginx binds: SO_REUSEADDR), or None."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


class NginxServer:
    """A real nginx with a private prefix directory.

    Args:
        prefix: Directory for the configuration, pid file, logs and temp files
            (created).
        binary: The nginx binary; :func:`find_nginx` by default.

    Raises:
        NginxError: When no nginx binary is found.
    """

    def __init__(self, prefix: str | os.PathLike[str], binary: str | None = None) -> None:
        found = find_nginx(binary)
        if found is None:
            raise NginxError(_why_not_found(binary))
        self.binary = found
        self.prefix = Path(prefix).resolve()
        self.conf = self.prefix / "nginx.conf"
        self.process: asyncio.subprocess.Process | None = None
        self.reloads = 0

    def _argv(self, *extra: str, conf: Path | None = None) -> list[str]:
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(conf or self.conf),
            "-e",
            str(self.prefix / "error.log"),
            *extra,
        ]

    async def _write_checked(self, config: str) -> None:
        # Test a new file first, then move it into place: a rejected
        # configuration never replaces the one nginx runs with.
        (self.prefix / "temp").mkdir(parents=True, exist_ok=True)
        candidate = self.prefix / "nginx.conf.new"
        candidate.write_text(config)
        code, out = await _run(*self._argv("-t", "-q", conf=candidate))
        if code != 0:
            candidate.unlink(missing_ok=True)
            raise NginxError(f"nginx rejected the configuration: {out}")
        os.replace(candidate, self.conf)

    async def start(self, config: str, listen: tuple[str, int], timeout: float = 10.0) -> None:
        """Write ``config``, start nginx and wait until it accepts on ``listen``.

        Raises:
            NginxError: When nginx rejects the configuration, exits, or does
                not listen in time (for instance when the port is taken).
        """
        host, port = listen
        # A port another program holds would pass the readiness check below
        # (it accepts) while nginx exits: refuse it first, in one line.
        taken = _bind_error(host, port)
        if taken is not None:
            why = os.strerror(taken.errno) if taken.errno else str(taken)
            raise NginxError(f"nginx cannot listen on {Server(host, port)}: {why}")
        self.prefix.mkdir(parents=True, exist_ok=True)
        await self._write_checked(config)
        log_path = self.prefix / "stderr.log"
        with log_path.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                # nginx stops (SIGTERM: fast shutdown, workers included) when
                # this process dies, even by SIGKILL: no orphan on the port.
                *die_with_parent(self._argv()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.returncode is not None:
                raise NginxError(f"nginx exited at start: {self._error_tail()}")
            if (self.prefix / "nginx.pid").exists() and await asyncio.to_thread(
                _port_open, host, port
            ):
                break
            if time.monotonic() > deadline:
                await self.stop()
                raise NginxError(f"nginx did not listen on {host}:{port}: {self._error_tail()}")
            await asyncio.sleep(0.05)
        log.info(
            "nginx %s listening on %s (prefix %s)", self.binary, Server(host, port), self.prefix
        )

    async def reload(self, config: str) -> None:
        """Write and test ``config``, then ``nginx -s reload``.

        Raises:
            NginxError: When nginx rejects the configuration or the reload; the
                previous configuration stays in place.
        """
        await self._write_checked(config)
        code, out = await _run(*self._argv("-s", "reload"))
        if code != 0:
            raise NginxError(f"nginx -s reload failed: {out}")
        self.reloads += 1

    async def wait(self) -> str:
        """Until nginx exits on its own; returns why, in one line."""
        process = self.process
        if process is None:
            return "nginx is not running"
        code = await process.wait()
        return f"nginx exited with code {code}: {self._error_tail()}"

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop nginx gracefully (``SIGQUIT``), then by force."""
        process, self.process = self.process, None
        await stop_process(process, sig=signal.SIGQUIT, timeout=timeout, group=True)

    def _error_tail(self) -> str:
        lines: list[str] = []
        for name in ("stderr.log", "error.log"):
            path = self.prefix / name
            if path.exists():
                lines += path.read_text(errors="replace").strip().splitlines()[-3:]
        return " | ".join(lines) or "no error output"


#: Called with the new server list once nginx has it.
ChangeListener = Callable[[Sequence[Server]], Awaitable[None] | None]


class UpstreamWatcher:
    """Keeps an nginx upstream equal to the announced instances of a service.

    Args:
        service: The announced name to follow (``coterie announce --name``).
        nginx: The nginx to reload.
        listen: Where that nginx listens.
        discovery: Discovery options.
        proxy_timeout: Seconds nginx waits for an instance to answer.
        settle: Seconds to gather changes before one reload.
    """

    def __init__(
        self,
        service: str,
        nginx: NginxServer,
        *,
        listen: tuple[str, int],
        discovery: DiscoveryOptions | None = None,
        proxy_timeout: float = 10.0,
        settle: float = 0.05,
    ) -> None:
        self.service = service
        self.nginx = nginx
        self.listen = listen
        self.proxy_timeout = proxy_timeout
        self.settle = settle
        self.servers: tuple[Server, ...] = ()
        self.generation = 0
        self._options = discovery or DiscoveryOptions()
        self._discovery: Discovery | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[ChangeListener] = []

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(servers)`` after each successful reload."""
        self._listeners.append(listener)

    def render(self) -> str:
        """The configuration for the current servers."""
        return render_config(
            self.service,
            self.servers,
            listen=self.listen,
            prefix=self.nginx.prefix,
            proxy_timeout=self.proxy_timeout,
            generation=self.generation,
        )

    async def start(self) -> None:
        """Start nginx with the placeholder upstream, then follow discovery."""
        await self.nginx.start(self.render(), self.listen)
        settings = self._options.resolve()
        adv: dict[str, Any] = build_advertisement(
            "",
            name=f"nginx for {self.service}",
            namespace=None,
            key=None,
            environment=Settings.from_environ().environment,
            extra={"type": "nginx-gateway", "follows": self.service, "listen": list(self.listen)},
        )
        self._discovery = Discovery(adv, settings)
        self._discovery.on(self._node_event)
        self._task = asyncio.get_running_loop().create_task(self._apply_loop())
        await self._discovery.start()

    async def close(self) -> None:
        """Stop following discovery and stop nginx."""
        if self._discovery is not None:
            await self._discovery.close()
            self._discovery = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.nginx.stop()

    def _node_event(self, event: str, node: Node) -> None:
        if node.advertisement.get("http") is True:
            self._dirty.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.settle)
            self._dirty.clear()
            if self._discovery is None:
                return
            servers = tuple(
                sorted(
                    http_servers(
                        self._discovery.nodes.values(),
                        self.service,
                        use_host_names=self._discovery.settings.use_host_names,
                        environment=Settings.from_environ().environment,
                    )
                )
            )
            if servers == self.servers:
                continue
            self.servers = servers
            self.generation += 1
            try:
                await self.nginx.reload(self.render())
            except NginxError as exc:
                log.error("%s", exc)
                continue
            log.info(
                "upstream %s: %s (reload %d)",
                self.service,
                ", ".join(map(str, servers)) or "none: nginx answers 502",
                self.generation,
            )
            for listener in list(self._listeners):
                try:
                    result = listener(servers)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("upstream change listener failed")
