"""The demo's child processes: started in host scope, watched, stopped in order.

Design: every piece of the demo is a real program, started as its user would
start it (``payment_service.py``, ``validation_service.py``, ``coterie
announce``, ``coterie nginx``), all in host scope (discovery on
127.255.255.255 unless the environment says otherwise, HTTP on 127.0.0.1)
and all in the run's own cote environment (``COTE_ENV``, ``--environment``):
the processes of a second demo on this host hear these hellos but never pair
with them, so each demo's tour tells its own story.
Each child gets its own session, so Ctrl-C in the terminal reaches only the
demo, which then stops the children in order (payments, validators, nginx),
and its own log file under a temporary directory. Each child also gets
SIGTERM from the kernel when the demo dies, however it dies (SIGKILL
included): ``die_with_parent``, which ``coterie announce`` and ``coterie
nginx`` apply in turn to their own children. :class:`Processes` holds them
all; it prints nothing. The temporary directory goes when the demo ends
(unless it keeps the logs on purpose); one a killed demo left behind goes
when the next demo starts (:func:`remove_stale_workdirs`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from coterie.gateways.hostscope import HOST_SCOPE
from coterie.gateways.process import die_with_parent, stop_process

__all__ = [
    "EXAMPLES",
    "PID_FILE",
    "SERVICE",
    "WORKDIR_PREFIX",
    "Child",
    "Processes",
    "free_port",
    "port_taken",
    "remove_stale_workdirs",
]

#: The directory of the example's programs (``examples/payment``).
EXAMPLES = Path(__file__).resolve().parents[1]
#: The service name the HTTP validators are announced under.
SERVICE = "validation-service"


#: In a demo's working directory while that demo runs: its process id.
PID_FILE = "demo.pid"
#: The prefix of every demo's working directory, in the temporary directory.
WORKDIR_PREFIX = "coterie-demo-"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def remove_stale_workdirs() -> list[Path]:
    """Remove the working directories of demos that were killed; returns them.

    A demo removes its directory when it ends, unless it keeps its logs on
    purpose (``--keep-logs``, a failure), which it says. Killed (SIGKILL) it
    cannot: its directory still holds :data:`PID_FILE` naming a process that
    is gone, and the next demo removes it. A directory whose process lives
    (another demo) or that has no such file (logs kept) stays.
    """
    removed: list[Path] = []
    for workdir in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int((workdir / PID_FILE).read_text())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and _gone(pid):
            shutil.rmtree(workdir, ignore_errors=True)
            removed.append(workdir)
    return removed


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether ``port`` cannot be bound on 127.0.0.1."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class Child:
    """One process of the demo, with its own log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self, env: dict[str, str]) -> None:
        """Start it in its own session, output to its log file."""
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                # SIGTERM from the kernel when the demo dies, even by SIGKILL.
                *die_with_parent(self.argv),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        """Whether it runs."""
        return self.process is not None and self.process.returncode is None

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to its process group after ``timeout``."""
        await stop_process(self.process, timeout=timeout, group=True)

    def tail(self, lines: int = 5) -> str:
        """The end of its log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Processes:
    """Every process of the demo.

    Args:
        args: The demo's options (ports, validators, discovery settings).
        nginx_binary: The nginx to run, or ``None`` for the mesh half only.
    """

    args: argparse.Namespace
    nginx_binary: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX)))
    children: list[Child] = field(default_factory=list)
    _counter: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        (self.workdir / PID_FILE).write_text(str(os.getpid()))

    def remove_workdir(self) -> None:
        """Remove the working directory, logs included."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def keep_logs(self) -> None:
        """Keep the working directory for its logs: no later demo removes it."""
        (self.workdir / PID_FILE).unlink(missing_ok=True)

    @property
    def logs(self) -> Path:
        """The directory of the children's log files."""
        return self.workdir / "logs"

    def payment_ports(self) -> list[tuple[str, int]]:
        """``(label, port)`` of each payment service: the mesh one, then nginx's."""
        ports = [("mesh ", self.args.mesh_port)]
        if self.nginx_binary is not None:
            ports.append(("nginx", self.args.nginx_payment_port))
        return ports

    def ports(self) -> list[tuple[str, int]]:
        """``(option, port)`` of every fixed port the demo listens on."""
        a = self.args
        wanted = [("--mesh-port", a.mesh_port)]
        if self.nginx_binary is not None:
            wanted += [
                ("--nginx-payment-port", a.nginx_payment_port),
                ("--nginx-port", a.nginx_port),
            ]
        return wanted

    def taken_ports(self) -> list[str]:
        """A sentence for each port the demo needs that is already taken."""
        return [
            f"port {port} is taken; free it or choose another with {flag}"
            for flag, port in self.ports()
            if port_taken(port)
        ]

    def free_ports_hint(self) -> str:
        """How to run the demo on free ports, naming every port it listens on.

        A second demo (the usual reason for a taken port) needs all of them
        changed; each suggestion is the first free port 100 above the last.
        """
        chosen: list[str] = []
        used: set[int] = set()
        for flag, port in self.ports():
            candidate = port
            while port_taken(candidate) or candidate in used:
                candidate += 100
                if candidate > 65535:
                    candidate = free_port()
            used.add(candidate)
            chosen += [flag, str(candidate)]
        if self.args.no_nginx:
            chosen.append("--no-nginx")
        options = " ".join(chosen)
        return (
            "another demo may be running (it keeps its own mesh); run this one on free "
            f'ports: make demo ARGS="{options}" (or python -m examples.payment.demo {options})'
        )

    # -- starting --------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["COTE_ENV"] = self.environment
        if not any(env.get(v) for v in ("COTE_BROADCAST_ADDRESS", "COTE_MULTICAST_ADDRESS")):
            env["COTE_BROADCAST_ADDRESS"] = HOST_SCOPE
        return env

    @property
    def environment(self) -> str:
        """The cote environment (``COTE_ENV``) of every process of this demo run."""
        return str(self.args.environment)

    def discovery_args(self) -> list[str]:
        """The discovery options every process of the demo gets."""
        argv = ["--hello-interval", str(self.args.hello_interval)]
        if self.args.discovery_port is not None:
            argv += ["--discovery-port", str(self.args.discovery_port)]
        return argv

    def _coterie(self) -> list[str]:
        return [sys.executable, "-m", "coterie"]

    async def _spawn(self, kind: str, argv: list[str]) -> Child:
        self._counter[kind] += 1
        name = f"{kind}-{self._counter[kind]}"
        self.logs.mkdir(parents=True, exist_ok=True)
        child = Child(name, argv, self.logs / f"{name}.log")
        await child.start(self._env())
        self.children.append(child)
        return child

    async def start_mesh_validator(self) -> Child:
        """One mesh validator (``validation_service.py``)."""
        name = f"mesh-validator-{self._counter['mesh-validator'] + 1}"
        return await self._spawn(
            "mesh-validator",
            [
                sys.executable,
                str(EXAMPLES / "validation_service.py"),
                "--id",
                name,
                *self.discovery_args(),
            ],
        )

    async def start_http_validator(self) -> Child:
        """One HTTP validator under ``coterie announce``."""
        name = f"http-validator-{self._counter['http-validator'] + 1}"
        port = free_port()
        return await self._spawn(
            "http-validator",
            [
                *self._coterie(),
                "announce",
                "--name",
                SERVICE,
                "--port",
                str(port),
                "--check-interval",
                "0.2",
                *self.discovery_args(),
                "--",
                sys.executable,
                str(EXAMPLES / "validation_service.py"),
                "--http",
                str(port),
                "--id",
                name,
            ],
        )

    async def start_all(self) -> None:
        """Start every process of the demo."""
        a = self.args
        await self._spawn(
            "payment-mesh",
            [
                sys.executable,
                str(EXAMPLES / "payment_service.py"),
                "--via",
                "mesh",
                "--port",
                str(a.mesh_port),
                *self.discovery_args(),
            ],
        )
        for _ in range(a.validators):
            await self.start_mesh_validator()
        if self.nginx_binary is None:
            return
        nginx_argv = [
            *self._coterie(),
            "nginx",
            "--service",
            SERVICE,
            "--listen",
            f"127.0.0.1:{a.nginx_port}",
            "--prefix",
            str(self.workdir / "nginx"),
            "--nginx",
            self.nginx_binary,
            "--proxy-timeout",
            "5",
            *self.discovery_args(),
        ]
        await self._spawn("nginx", nginx_argv)
        await self._spawn(
            "payment-nginx",
            [
                sys.executable,
                str(EXAMPLES / "payment_service.py"),
                "--via",
                "nginx",
                "--port",
                str(a.nginx_payment_port),
                "--validation-url",
                f"http://127.0.0.1:{a.nginx_port}",
                "--timeout",
                "10",
            ],
        )
        for _ in range(a.validators):
            await self.start_http_validator()

    # -- watching and stopping -------------------------------------------------------

    def check_alive(self) -> None:
        """Raise when a child has exited.

        Raises:
            RuntimeError: Naming the child, with the end of its log.
        """
        for child in self.children:
            if not child.alive:
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")

    async def stop_validators(self) -> list[Child]:
        """Stop every running validator; they are no longer watched. Returns them."""
        validators = [c for c in self.children if "validator" in c.name and c.alive]
        await asyncio.gather(*(c.stop() for c in validators))
        for child in validators:  # stopped on purpose
            self.children.remove(child)
        return validators

    async def stop_all(self) -> None:
        """Stop every process: payments first, then validators, then nginx."""
        order = ("payment", "mesh-validator", "http-validator", "nginx")
        for prefix in order:
            batch = [c for c in self.children if c.name.startswith(prefix)]
            await asyncio.gather(*(c.stop() for c in batch))
