"""Announce any HTTP process on coterie discovery, the way Registrator does for containers.

Design: :class:`Announcer` runs a command as a child process and checks, every
``check_interval`` seconds, that its port accepts a TCP connection. While
both hold, a :class:`~coterie.discovery.service.Discovery` sends hellos with
an advertisement naming the service and port and marking it as plain HTTP
(``"type": "http"``, ``"http": true``); coterie components ignore it (it has
no role) and :class:`~coterie.gateways.nginx.UpstreamWatcher` picks it up.
When the port stops answering the announcement is withdrawn with a goodbye
and comes back when the port answers again; when the child exits it is
withdrawn and the announcer returns the child's exit code. Stopping the
announcer (``stop()``, or SIGINT/SIGTERM in the CLI) terminates the child;
on Linux the child also gets SIGTERM when the announcer dies any other way
(:func:`~coterie.gateways.process.die_with_parent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from coterie.discovery.options import DiscoveryOptions
from coterie.discovery.service import Discovery
from coterie.gateways.process import die_with_parent, stop_process
from coterie.protocol.pairing import build_advertisement
from coterie.settings import Settings

__all__ = ["Announcer", "http_advertisement", "port_answers"]

log = logging.getLogger("coterie.announce")


def http_advertisement(name: str, port: int, host: str | None = None) -> dict[str, Any]:
    """The advertisement of an announced HTTP service.

    Args:
        name: Service name (what ``coterie nginx --service`` follows).
        port: Its TCP port.
        host: Address peers should use; by default they use the hello's source.

    Raises:
        ValueError: For an empty name or a port out of range.
    """
    if not name:
        raise ValueError("an announced service needs a name")
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")
    extra: dict[str, Any] = {"type": "http", "http": True, "port": port}
    if host:
        extra["host"] = host
    return build_advertisement(
        "",
        name=name,
        namespace=None,
        key=None,
        environment=Settings.from_environ().environment,
        extra=extra,
    )


async def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Announcer:
    """Runs a command and announces its HTTP port while the process lives and answers.

    Args:
        command: The program and its arguments.
        name: Service name to announce.
        port: The port the command serves on.
        check_host: Where to check the port.
        advertise_host: Host to put in the advertisement (default: none, peers
            use the hello's source address).
        discovery: Discovery options.
        check_interval: Seconds between port checks.
        stop_timeout: Seconds the child gets to exit after SIGTERM.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        port: int,
        check_host: str = "127.0.0.1",
        advertise_host: str | None = None,
        discovery: DiscoveryOptions | None = None,
        check_interval: float = 0.5,
        stop_timeout: float = 5.0,
    ) -> None:
        if not command:
            raise ValueError("nothing to run: give a command after --")
        if check_interval <= 0:
            raise ValueError(f"check interval must be positive, got {check_interval}")
        self.command = list(command)
        self.name = name
        self.port = port
        self.check_host = check_host
        self.advertisement = http_advertisement(name, port, advertise_host)
        self.check_interval = check_interval
        self.stop_timeout = stop_timeout
        self._options = discovery or DiscoveryOptions()
        self._discovery: Discovery | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self.announcements = 0

    @property
    def announced(self) -> bool:
        """Whether the service is advertised right now."""
        return self._discovery is not None

    @property
    def pid(self) -> int | None:
        """The child's process id, once started."""
        return self._process.pid if self._process else None

    async def run(self) -> int:
        """Run the command until it exits; returns its exit code.

        Raises:
            OSError: When the command cannot be started.
        """
        settings = self._options.resolve()
        # The command dies with the announcer, even a killed one: never an
        # unannounced orphan holding the port.
        self._process = await asyncio.create_subprocess_exec(*die_with_parent(self.command))
        log.info(
            "announce: started %s (pid %d); announcing %r on port %d while it answers",
            " ".join(self.command),
            self._process.pid,
            self.name,
            self.port,
        )
        exited = asyncio.ensure_future(self._process.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not exited.done():
                up = await port_answers(self.check_host, self.port, self.check_interval)
                if exited.done():
                    break
                if up and self._discovery is None:
                    self._discovery = Discovery(dict(self.advertisement), settings)
                    await self._discovery.start()
                    self.announcements += 1
                    log.info("announce: %r on port %d is up: announced", self.name, self.port)
                elif not up and self._discovery is not None:
                    await self._withdraw(f"port {self.port} stopped answering")
                await asyncio.wait(
                    {exited, stopping},
                    timeout=self.check_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping.done():
                    break
        finally:
            stopping.cancel()
            await self._withdraw("the process exited" if exited.done() else "stopping")
            if not exited.done():
                await self._terminate()
            code = await exited
        log.info("announce: %s exited with code %d", self.command[0], code)
        return code

    def stop(self) -> None:
        """Withdraw and terminate the child (``run`` then returns)."""
        self._stopping.set()

    async def _withdraw(self, why: str) -> None:
        discovery, self._discovery = self._discovery, None
        if discovery is not None:
            await discovery.close()
            log.info("announce: %r on port %d withdrawn: %s", self.name, self.port, why)

    async def _terminate(self) -> None:
        if await stop_process(self._process, timeout=self.stop_timeout):
            log.warning("announce: %s ignored SIGTERM; killed it", self.command[0])
